/**
 * @module bench/restart
 * bench/restart.ts: the live-restore restart window as users feel it,
 * through the real `bin/aegis` with a private AEGIS_HOME, against a baseline
 * measured in the same run:
 *
 * - baseline: a cold daemon start (no VMs) from `aegis up` to the first API
 *   answer (`GET /v1/status` on the socket);
 * - restart window: aegisd is killed with SIGKILL while an instance serves
 *   through the router, `aegis up` is run at once, and the clock stops at the
 *   first HTTP 200 through the router again (the VM re-adopted, not booted:
 *   its QEMU pid is checked to be the same);
 * - the same window split: kill -> `aegis up` returned (the daemon listens),
 *   and the live-restore pass as aegisd's log reports it.
 *
 * One VM runs. Usage: `bun bench/restart.ts [--runs N]` (needs bin/aegis).
 * Prints a table and writes bench/results/restart.json.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { aegisCli, report, type Row, stats } from "./_lib.ts";
import { freePort } from "../test/helpers/free-port.ts";

const RUNS = (() => {
  const i = process.argv.indexOf("--runs");
  return i >= 0 ? Number(process.argv[i + 1]) : 5;
})();
const log = (m: string) => process.stderr.write(`bench: ${m}\n`);
const HTTPD = ["sh", "-c", "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www"];

/** Poll `probe` every 10 ms until it is true; the elapsed ms since `t0`. */
async function until(t0: number, what: string, probe: () => Promise<boolean>, timeoutMs = 120_000): Promise<number> {
  for (;;) {
    if (await probe().catch(() => false)) return performance.now() - t0;
    if (performance.now() - t0 > timeoutMs) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
    await Bun.sleep(10);
  }
}

function qemuPids(home: string): number[] {
  const out = Bun.spawnSync(["pgrep", "-f", `qemu-system.*${home}/`]).stdout.toString().trim();
  return out ? out.split("\n").map(Number).sort((a, b) => a - b) : [];
}

const home = mkdtempSync(join(tmpdir(), "ab-"));
const routerPort = await freePort();
const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root", AEGIS_HOME: home, AEGIS_ROUTER_PORT: String(routerPort), AEGIS_E2B_PORT: "0", AEGIS_BOOT_TIMEOUT_MS: "90000" };
const cli = (...args: string[]) => aegisCli(env, ...args);
const status = async () => (await fetch("http://aegis/v1/status", { unix: join(home, "aegisd.sock"), signal: AbortSignal.timeout(2000) } as RequestInit)).status === 200;
const served = async () => (await fetch(`http://127.0.0.1:${routerPort}/web/index.html`, { signal: AbortSignal.timeout(2000) })).status === 200;
const daemonPid = () => Number(readFileSync(join(home, "data", "aegisd.pid"), "utf8").trim());
/** Where the last adoption's time went (QemuBackend.adopt logs its phases). */
const adoptPhases = () =>
  readFileSync(join(home, "data", "aegisd.log"), "utf8")
    .split("\n")
    .filter((l) => l.includes('"VM adopted"'))
    .map((l) => (JSON.parse(l) as { ms_after_start: Record<string, number> }).ms_after_start)
    .at(-1);
const restoreMs = () =>
  readFileSync(join(home, "data", "aegisd.log"), "utf8")
    .split("\n")
    .filter((l) => l.includes('"live restore done"'))
    .map((l) => (JSON.parse(l) as { ms: number }).ms)
    .at(-1)!;

try {
  // Guest assets and the daemon's first start are paid once, outside the figures.
  await cli("up");
  const cold: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    await cli("down");
    const t0 = performance.now();
    const up = cli("up");
    cold.push(await until(t0, "the first API answer", status));
    await up;
  }
  log(`cold daemon start -> first API answer: ${cold.map((v) => v.toFixed(0)).join(", ")} ms`);

  await cli("instance", "start", "--name", "web", "--pause-after", "0", "--expose", "8080", "--", ...HTTPD);
  await until(performance.now(), "the first request served", served);
  const vms = qemuPids(home);
  if (vms.length !== 1) throw new Error(`expected one QEMU, found ${vms.length}`);
  const windowMs: number[] = [];
  const upMs: number[] = [];
  const restore: number[] = [];
  const phases: Record<string, number>[] = [];
  for (let i = 0; i < RUNS; i++) {
    const pid = daemonPid();
    const t0 = performance.now();
    process.kill(pid, "SIGKILL");
    await until(t0, "aegisd to exit", async () => !(await Bun.file(`/proc/${pid}/stat`).exists()));
    await cli("up");
    upMs.push(performance.now() - t0);
    windowMs.push(await until(t0, "the first request served again", served));
    restore.push(restoreMs());
    phases.push(adoptPhases() ?? {});
    const now = qemuPids(home);
    if (now.join() !== vms.join()) throw new Error(`the VM was not re-adopted: QEMU ${vms.join()} before, ${now.join()} after`);
    log(`run ${i + 1}: kill -> served again ${windowMs.at(-1)!.toFixed(0)} ms (aegis up returned at ${upMs.at(-1)!.toFixed(0)} ms, live restore ${restore.at(-1)} ms; adoption phases, ms since it began: ${JSON.stringify(phases.at(-1))})`);
    await Bun.sleep(500);
  }
  const baseline = { name: "cold daemon start -> first API answer", value: stats(cold).median };
  const rows: Row[] = [
    { metric: "restart window: SIGKILL -> first request served (median)", value: stats(windowMs).median, unit: "ms", baseline, better: "lower" },
    { metric: "restart window (max)", value: stats(windowMs).max, unit: "ms", baseline, better: "lower" },
    { metric: "SIGKILL -> aegis up returned (median)", value: stats(upMs).median, unit: "ms", baseline, better: "lower" },
    { metric: "live restore pass, aegisd's log (median)", value: stats(restore).median, unit: "ms", better: "lower" },
  ];
  report("restart", rows, { runs: RUNS, samples: { cold, window: windowMs, up: upMs, restore, adoption_phases: phases } });
} finally {
  await cli("down").catch((err: unknown) => log(`aegis down failed: ${String(err)}`));
  rmSync(home, { recursive: true, force: true });
}

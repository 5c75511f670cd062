/**
 * @module bench/density
 * How many idle agents fit in the host's RAM: start N instances through the
 * real `bin/aegis` (default daemon, so from a template), pause each once it
 * serves, and measure every paused instance's host memory from
 * /proc/PID/smaps_rollup of its QEMU (+ virtiofsd when it has a workspace):
 * - USS (Private_Clean + Private_Dirty): what deleting the instance frees;
 * - PSS: its fair share of pages shared with the other instances (template
 *   memory file, binaries) — the sum of PSS is the total they cost;
 * - RSS, the figure `ps` shows, as the baseline measured in the same run.
 * Then the wake of each paused instance: ms from a GET through the router to
 * its first byte. It ends with how many such instances fit in MemAvailable,
 * and the median split of QEMU's USS by mapping (bench/_smaps.ts: guest RAM
 * the guest wrote, TCG translation cache, binaries, other anonymous memory).
 *
 * Usage: `bun bench/density.ts` (needs bin/aegis); AEGIS_BENCH_DENSITY_N
 * (default 20) sets N, lower it on a small machine; AEGIS_TCG_TB_MB and
 * AEGIS_BOOT_TIMEOUT_MS are passed on to the daemon. Writes
 * bench/results/density.json.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { detectAccel } from "../src/vmm/accel.ts";
import { report, repoRoot, stats } from "./_lib.ts";
import { ussBreakdown, type UssBreakdown } from "./_smaps.ts";

const N = Number(process.env.AEGIS_BENCH_DENSITY_N ?? 20);
if (!Number.isInteger(N) || N < 1 || N > 200) throw new Error(`AEGIS_BENCH_DENSITY_N ${JSON.stringify(process.env.AEGIS_BENCH_DENSITY_N)} must be an integer 1..200`);
const HTTPD = ["sh", "-c", "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www"];
const log = (m: string) => process.stderr.write(`bench: ${m}\n`);

/** Memory of one process set, in MB. */
interface Mem {
  uss: number;
  pss: number;
  rss: number;
}

/** smaps_rollup fields of one pid, in MB. */
export function smapsRollup(text: string): Mem {
  const kb = (name: string) => Number(text.match(new RegExp(`^${name}:\\s+(\\d+) kB`, "m"))?.[1] ?? NaN);
  return { uss: (kb("Private_Clean") + kb("Private_Dirty")) / 1024, pss: kb("Pss") / 1024, rss: kb("Rss") / 1024 };
}

/** Pids whose command line names `needle` and runs `exe` (qemu-system / virtiofsd). */
function pidsOf(exe: string, needle: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    let cmd: string;
    try {
      cmd = readFileSync(`/proc/${d}/cmdline`, "utf8");
    } catch {
      continue; // gone between readdir and read
    }
    if (cmd.split("\0")[0]!.includes(exe) && cmd.includes(needle)) out.push(Number(d));
  }
  return out;
}

/** The guest memory size of every instance this bench starts (the default shape). */
const GUEST_MB = 512;

function instanceMem(id: string): Mem & { qemuUss: UssBreakdown } {
  const qemu = pidsOf("qemu-system", id);
  if (qemu.length !== 1) throw new Error(`expected one QEMU for instance ${id}, found ${qemu.length}`);
  const total = { uss: 0, pss: 0, rss: 0, qemuUss: ussBreakdown(readFileSync(`/proc/${qemu[0]}/smaps`, "utf8"), GUEST_MB) };
  for (const pid of [...qemu, ...pidsOf("virtiofsd", id)]) {
    const m = smapsRollup(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"));
    total.uss += m.uss;
    total.pss += m.pss;
    total.rss += m.rss;
  }
  return total;
}

async function cli(env: Record<string, string>, args: string[]): Promise<string> {
  const p = Bun.spawn([join(repoRoot, "bin", "aegis"), ...args], { env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`aegis ${args.join(" ")} exited ${code}: ${err.trim()}`);
  return out;
}

/** GET through the router until it answers 200 `ok`: ms to the response head of the successful request. */
async function firstByte(url: string, timeoutMs = 60_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const t0 = performance.now();
    const res = await fetch(url, { keepalive: false, signal: AbortSignal.timeout(timeoutMs) });
    const ms = performance.now() - t0;
    const body = await res.text();
    if (res.status === 200 && body === "ok\n") return ms;
    if (Date.now() > deadline) throw new Error(`GET ${url}: ${res.status} ${body.slice(0, 200)}`);
    await Bun.sleep(20);
  }
}

async function main(): Promise<void> {
  const home = mkdtempSync(join(tmpdir(), "agd-"));
  const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root", AEGIS_HOME: home, AEGIS_ROUTER_PORT: "0" };
  // A longer boot watchdog (loaded machine) or another TCG cache size is the caller's choice: passed on to the daemon.
  for (const k of ["AEGIS_BOOT_TIMEOUT_MS", "AEGIS_TCG_TB_MB"]) if (process.env[k]) env[k] = process.env[k]!;
  const json = async <T>(args: string[]) => JSON.parse(await cli(env, [...args, "--json"])) as T;
  const t0 = performance.now();
  const started: string[] = [];
  try {
    await cli(env, ["up"]);
    const { router_url: router } = await json<{ router_url: string }>(["status"]);
    const ids: string[] = [];
    const startMs: number[] = [];
    for (let i = 0; i < N; i++) {
      const name = `d${i}`;
      const ts = performance.now();
      started.push(name);
      await cli(env, ["instance", "start", "--name", name, "--expose", "8080", "--pause-after", "0", "--", ...HTTPD]);
      await firstByte(`${router}/${name}/`);
      if (i > 0) startMs.push(performance.now() - ts); // the first one builds the template
      ids.push((await json<{ id: string }>(["instance", "info", name])).id);
      await cli(env, ["instance", "pause", name]);
      log(`${name} started and paused (${(performance.now() - ts).toFixed(0)} ms)`);
    }
    await Bun.sleep(2000);
    const mems = ids.map(instanceMem);
    const wake: number[] = [];
    for (let i = 0; i < N; i++) {
      wake.push(await firstByte(`${router}/d${i}/`));
      await cli(env, ["instance", "pause", `d${i}`]);
    }
    const memAvailMb = Number(readFileSync("/proc/meminfo", "utf8").match(/^MemAvailable:\s+(\d+) kB/m)![1]) / 1024;
    const uss = stats(mems.map((m) => m.uss));
    const pss = stats(mems.map((m) => m.pss));
    const rss = stats(mems.map((m) => m.rss));
    const w = stats(wake);
    const split = Object.fromEntries((Object.keys(mems[0]!.qemuUss) as (keyof UssBreakdown)[]).map((k) => [k, stats(mems.map((m) => m.qemuUss[k])).median]));
    report(
      "density",
      [
        { metric: `USS of a paused instance (512 MB guest), median of ${N}`, value: uss.median, unit: "MB", baseline: { name: "its RSS", value: rss.median }, better: "lower" },
        { metric: `PSS of a paused instance, median of ${N}`, value: pss.median, unit: "MB", baseline: { name: "its RSS", value: rss.median }, better: "lower" },
        { metric: "paused -> first byte via router (wake)", value: w.median, unit: "ms", better: "lower" },
        { metric: "template start -> serving (instances 2..N)", value: stats(startMs).median, unit: "ms", better: "lower" },
      ],
      {
        accel: detectAccel(),
        n: N,
        uss_mb: uss,
        pss_mb: pss,
        rss_mb: rss,
        sum_pss_mb: mems.reduce((a, m) => a + m.pss, 0),
        qemu_uss_split_median_mb: split,
        wake_ms: w,
        mem_available_mb: memAvailMb,
        more_paused_instances_fit: Math.floor(memAvailMb / pss.median),
        total_seconds: (performance.now() - t0) / 1000,
        notes: "USS = Private_Clean + Private_Dirty of QEMU (+ virtiofsd) from smaps_rollup; PSS splits pages shared between instances (the template memory file, QEMU's binary) among them",
      },
    );
    process.stdout.write(`paused instances: USS median ${uss.median.toFixed(0)} MB, PSS ${pss.median.toFixed(0)} MB, RSS ${rss.median.toFixed(0)} MB; wake median ${w.median.toFixed(0)} ms (max ${w.max.toFixed(0)}); ~${Math.floor(memAvailMb / pss.median)} more fit in MemAvailable ${memAvailMb.toFixed(0)} MB\n`);
    process.stdout.write(`QEMU USS by mapping (medians, MB): ${Object.entries(split).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(", ")}\n`);
  } finally {
    // Deleted first: `aegis down` leaves running VMs to the next daemon (live restore).
    for (const name of started) await cli(env, ["instance", "delete", name]).catch((err: unknown) => log(`delete ${name}: ${String(err)}`));
    await cli(env, ["down"]).catch((err: unknown) => log(`aegis down: ${String(err)}`));
    rmSync(home, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  main().catch((err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}

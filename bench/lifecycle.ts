/**
 * @module bench/lifecycle
 * bench/lifecycle.ts: the instance lifecycle as users feel it, through the real
 * `bin/aegis` with a private AEGIS_HOME. Every figure sits next to a baseline
 * measured in the same run:
 *
 * 1. `aegis instance start --expose 8080 -- httpd ...` -> first HTTP 200 through
 *    the router: cold boot (daemon with AEGIS_TEMPLATES=0) vs a bare QEMU boot
 *    of the same kernel (trivial /init that powers off, as in bench/boot.ts),
 *    and from a template (default daemon) vs that cold boot;
 * 2. paused instance -> first byte of a GET through the router, vs the same
 *    GET while it runs;
 * 3. idle-stopped instance with a memory snapshot -> first byte through the
 *    router (restore + serve), broken down by phase from aegisd's log
 *    (bench/_wake.ts), vs the same wake of an instance started with
 *    `--secret` (never snapshotted, so its wake boots afresh: a cold boot with
 *    AEGIS_TEMPLATES=0, a template start otherwise);
 * 4. small GETs (1 and 8 Bun fetch clients) and a 20 MB download through the
 *    router vs straight to QEMU's hostfwd port (`expose[].host_port`);
 * 5. `aegis run -- true` end to end, from a template vs cold;
 * 6. QEMU RSS of an idle instance, paused vs running (and template-started vs
 *    cold-booted).
 *
 * At most two VMs run at once. Usage: `bun bench/lifecycle.ts [--runs N]`
 * (needs bin/aegis). Prints a table and writes bench/results/lifecycle.json.
 */
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureGuestAssets, type GuestAssets } from "../src/vmm/assets/index.ts";
import { detectAccel } from "../src/vmm/accel.ts";
import { baselineBoot, baselineInitrd } from "./_baseline.ts";
import { report, repoRoot, type Row, stats } from "./_lib.ts";
import { Cli, info, startToServing, ttfb, up, wakeFromStopped } from "./_instances.ts";
import { medianPhases, phaseTable } from "./_wake.ts";

const RUNS = (() => {
  const i = process.argv.indexOf("--runs");
  return i >= 0 ? Number(process.argv[i + 1]) : 3;
})();
const REQUESTS = 400;
/** The small-GET requests run as this many alternating router/direct rounds. */
const ROUNDS = 4;
const BIG_BYTES = 20 * 1024 * 1024;
const log = (m: string) => process.stderr.write(`bench: ${m}\n`);
const median = (xs: number[]) => stats(xs).median;
const p90 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.ceil(xs.length * 0.9) - 1]!;

async function aegisRunTrue(cli: Cli): Promise<number> {
  const t0 = performance.now();
  await cli.ok(["run", "--", "true"]);
  return performance.now() - t0;
}

/** Pids of QEMU processes whose command line mentions `needle` (an instance id or AEGIS_HOME). */
function qemuPids(needle: string): number[] {
  const pids: number[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    let cmd: string;
    try {
      cmd = readFileSync(`/proc/${d}/cmdline`, "utf8");
    } catch (err) {
      // The process ended between readdir and read.
      if ((err as NodeJS.ErrnoException).code === "ENOENT" || (err as NodeJS.ErrnoException).code === "ESRCH") continue;
      throw err;
    }
    if (cmd.startsWith("/") && cmd.split("\0")[0]!.includes("qemu-system") && cmd.includes(needle)) pids.push(Number(d));
  }
  return pids;
}

function qemuRssMb(instanceId: string): number {
  const pids = qemuPids(instanceId);
  if (pids.length !== 1) throw new Error(`expected one QEMU process for ${instanceId}, found ${pids.length}`);
  const m = readFileSync(`/proc/${pids[0]}/status`, "utf8").match(/^VmRSS:\s+(\d+) kB/m);
  if (!m) throw new Error(`no VmRSS for pid ${pids[0]}`);
  return Number(m[1]) / 1024;
}

/** `requests` small GETs from `concurrency` keep-alive clients: wall time and per-request latencies (ms). */
async function load(url: string, concurrency: number, requests: number): Promise<{ ms: number; lat: number[] }> {
  let next = 0;
  const lat: number[] = [];
  const worker = async () => {
    while (next++ < requests) {
      const t0 = performance.now();
      const res = await fetch(url);
      const body = await res.text();
      lat.push(performance.now() - t0);
      if (res.status !== 200 || body !== "ok\n") throw new Error(`GET ${url}: ${res.status} ${body.slice(0, 200)}`);
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const ms = performance.now() - t0;
  return { ms, lat };
}

/** Download `url` (20 MB): MB/s. */
async function download(url: string): Promise<number> {
  const t0 = performance.now();
  const res = await fetch(url);
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status}`);
  const n = (await res.arrayBuffer()).byteLength;
  if (n !== BIG_BYTES) throw new Error(`GET ${url}: ${n} bytes, expected ${BIG_BYTES}`);
  return n / 1024 / 1024 / ((performance.now() - t0) / 1000);
}

/** bench/boot.ts's floor: the same kernel with a /init that powers off at once, QEMU spawn -> exit (ms). */
async function bareQemuBoots(assets: GuestAssets, work: string): Promise<number[]> {
  const initrd = await baselineInitrd(work);
  const out: number[] = [];
  for (let i = 0; i < RUNS; i++) out.push(await baselineBoot(assets, initrd, join(work, `b${i}`)));
  return out;
}

const CLK_TCK = Number(Bun.spawnSync(["getconf", "CLK_TCK"]).stdout.toString().trim());

/** CPU time (user + system) a process has used so far, in ms. */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 14 and 15 of proc(5) (utime, stime) are 12 and 13 after the command name.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
}

/** Daemon with AEGIS_TEMPLATES=0: cold boots, cold `aegis run`, cold wake of a secret instance, RSS of a cold-booted VM. */
async function coldPhase(cli: Cli) {
  const { router } = await up(cli, { AEGIS_TEMPLATES: "0" });
  await cli.ok(["secret", "set", "BENCH_KEY", "bench-value"]);
  const boot: number[] = [];
  let rss = NaN;
  for (let i = 0; i < RUNS; i++) {
    boot.push(await startToServing(cli, router, `cold${i}`));
    log(`cold boot to serving ${i + 1}/${RUNS}: ${boot[i]!.toFixed(0)} ms`);
    if (i === RUNS - 1) {
      await Bun.sleep(2000);
      rss = qemuRssMb((await info(cli, `cold${i}`)).id);
    }
    await cli.ok(["instance", "delete", `cold${i}`]);
  }
  const run: number[] = [];
  for (let i = 0; i < RUNS; i++) run.push(await aegisRunTrue(cli));
  log(`cold aegis run -- true: ${run.map((x) => x.toFixed(0)).join(", ")} ms`);
  const secretWake = (await wakeFromStopped(cli, router, "secc", ["--secret", "BENCH_KEY"], false, RUNS)).map((w) => w.ttfb);
  log(`secret instance wake (cold boot): ${secretWake.map((x) => x.toFixed(0)).join(", ")} ms`);
  await cli.ok(["down"]);
  return { boot, run, secretWake, rss };
}

/** Default daemon (templates): everything else. */
async function templatePhase(cli: Cli) {
  const { router, pid: daemonPid } = await up(cli);
  // Tasks and instances have different template keys (instances carry an overlay disk): build both before timing.
  const t0 = performance.now();
  await aegisRunTrue(cli);
  const templateBuildMs = { task: performance.now() - t0, instance: await startToServing(cli, router, "warm") };
  await cli.ok(["instance", "delete", "warm"]);
  log(`template build + first start: task ${templateBuildMs.task.toFixed(0)} ms, instance ${templateBuildMs.instance.toFixed(0)} ms`);
  const boot: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    boot.push(await startToServing(cli, router, `tpl${i}`));
    await cli.ok(["instance", "delete", `tpl${i}`]);
  }
  log(`template start to serving: ${boot.map((x) => x.toFixed(0)).join(", ")} ms`);
  const run: number[] = [];
  for (let i = 0; i < RUNS; i++) run.push(await aegisRunTrue(cli));
  log(`template aegis run -- true: ${run.map((x) => x.toFixed(0)).join(", ")} ms`);

  // One long-lived instance the idle policy leaves alone.
  await startToServing(cli, router, "web", ["--pause-after", "0"]);
  const web = await info(cli, "web");
  const via = `${router}/web`;
  const direct = `http://127.0.0.1:${web.expose[0]!.host_port}`;
  // Interleaved, so both samples see the same host load.
  const running: number[] = [];
  const resumed: number[] = [];
  for (let i = 0; i < RUNS + 2; i++) {
    running.push(await ttfb(`${via}/`), await ttfb(`${via}/`));
    await cli.ok(["instance", "pause", "web"]);
    resumed.push(await ttfb(`${via}/`));
    if ((await info(cli, "web")).state !== "running") throw new Error("web is not running after a request to it while paused");
  }
  log(`paused -> first byte: ${resumed.map((x) => x.toFixed(0)).join(", ")} ms; running: ${median(running).toFixed(1)} ms`);

  await Bun.sleep(2000);
  const rssRunning = qemuRssMb(web.id);
  await cli.ok(["instance", "pause", "web"]);
  await Bun.sleep(2000);
  const rssPaused = qemuRssMb(web.id);
  log(`QEMU RSS running ${rssRunning.toFixed(0)} MB, paused ${rssPaused.toFixed(0)} MB`);
  await ttfb(`${via}/`);

  const rps: Record<string, { router: number; direct: number; routerP50: number; directP50: number; routerP90: number; directP90: number; daemonCpuMsPerRequest: number }> = {};
  for (const c of [1, 8]) {
    await load(`${via}/`, c, 20);
    await load(`${direct}/`, c, 20);
    // Alternate router and direct in rounds so a burst of load from elsewhere on the host hits both alike.
    const r = { ms: 0, lat: [] as number[] };
    const d = { ms: 0, lat: [] as number[] };
    let daemonCpu = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const cpu0 = cpuMs(daemonPid);
      const a = await load(`${via}/`, c, REQUESTS / ROUNDS);
      daemonCpu += cpuMs(daemonPid) - cpu0;
      const b = await load(`${direct}/`, c, REQUESTS / ROUNDS);
      r.ms += a.ms;
      r.lat.push(...a.lat);
      d.ms += b.ms;
      d.lat.push(...b.lat);
    }
    const daemonCpuMsPerRequest = daemonCpu / REQUESTS;
    rps[c] = { router: REQUESTS / (r.ms / 1000), direct: REQUESTS / (d.ms / 1000), routerP50: median(r.lat), directP50: median(d.lat), routerP90: p90(r.lat), directP90: p90(d.lat), daemonCpuMsPerRequest };
    log(`${c} client(s): router ${rps[c].router.toFixed(0)} req/s (aegisd CPU ${daemonCpuMsPerRequest.toFixed(2)} ms/request), direct ${rps[c].direct.toFixed(0)} req/s`);
  }
  await cli.ok(["exec", "web", "--", "sh", "-c", `head -c ${BIG_BYTES} /dev/zero > /www/big`]);
  const bigRouter: number[] = [];
  const bigDirect: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    bigRouter.push(await download(`${via}/big`));
    bigDirect.push(await download(`${direct}/big`));
  }
  log(`20 MB: router ${median(bigRouter).toFixed(1)} MB/s, direct ${median(bigDirect).toFixed(1)} MB/s`);
  await cli.ok(["instance", "delete", "web"]);

  const snapWakes = await wakeFromStopped(cli, router, "snap", [], true, RUNS);
  const snapWake = snapWakes.map((w) => w.ttfb);
  const snapWakePhases = medianPhases(snapWakes.map((w) => w.phases));
  log(`snapshot restore wake: ${snapWake.map((x) => x.toFixed(0)).join(", ")} ms; by phase (medians, aegisd's log):\n${phaseTable(snapWakePhases)}`);
  const secretWake = (await wakeFromStopped(cli, router, "sect", ["--secret", "BENCH_KEY"], false, RUNS)).map((w) => w.ttfb);
  log(`secret instance wake (template start): ${secretWake.map((x) => x.toFixed(0)).join(", ")} ms`);
  await cli.ok(["down"]);
  return { templateBuildMs, boot, run, running, resumed, rssRunning, rssPaused, rps, bigRouter, bigDirect, snapWake, snapWakePhases, secretWake };
}

/** After `aegis down`, no QEMU of this home may be left; any that is gets killed and reported. */
function checkNoLeftoverVms(home: string): void {
  const left = qemuPids(home);
  for (const pid of left) process.kill(pid, "SIGKILL");
  if (left.length > 0) throw new Error(`aegis down left ${left.length} QEMU process(es) of ${home} running (pids ${left.join(", ")}); killed them`);
}

async function main(): Promise<void> {
  const built = join(repoRoot, "bin", "aegis");
  if (!existsSync(built)) throw new Error(`${built} is missing: run \`bun run build.ts\` first`);
  const started = performance.now();
  const home = mkdtempSync(join(tmpdir(), "al-"));
  // Run a private copy: a rebuild of bin/aegis during the run must not change what is measured half-way.
  const bin = join(home, "aegis");
  copyFileSync(built, bin);
  const binary = { built_at: statSync(built).mtime.toISOString(), bytes: statSync(built).size, sha256: new Bun.CryptoHasher("sha256").update(readFileSync(bin)).digest("hex").slice(0, 16) };
  const cli = new Cli(bin, home);
  let failure: unknown;
  try {
    log(`AEGIS_HOME=${home}, runs=${RUNS}`);
    const assets = await ensureGuestAssets({ dir: join(home, "guest"), binary: bin, progress: () => {} });
    const bare = await bareQemuBoots(assets, join(home, "bare"));
    log(`bare QEMU boot: ${bare.map((x) => x.toFixed(0)).join(", ")} ms`);
    const cold = await coldPhase(cli);
    checkNoLeftoverVms(home);
    const tpl = await templatePhase(cli);
    checkNoLeftoverVms(home);

    const ms = (metric: string, value: number[], name: string, base: number[]): Row => ({ metric, value: median(value), unit: "ms", baseline: { name, value: median(base) }, better: "lower" });
    const rows: Row[] = [
      ms("cold boot -> serving via router (AEGIS_TEMPLATES=0)", cold.boot, "bare QEMU boot, /init powers off", bare),
      ms("template start -> serving via router", tpl.boot, "cold boot -> serving", cold.boot),
      ms("aegis run -- true, from a template", tpl.run, "cold (AEGIS_TEMPLATES=0)", cold.run),
      ms("paused -> first byte via router", tpl.resumed, "running -> first byte", tpl.running),
      ms("idle-stopped -> first byte, snapshot restore [vs cold]", tpl.snapWake, "--secret instance: cold boot", cold.secretWake),
      ms("idle-stopped -> first byte, snapshot restore [vs template]", tpl.snapWake, "--secret instance: template start", tpl.secretWake),
    ];
    for (const c of [1, 8]) {
      const r = tpl.rps[c]!;
      rows.push({ metric: `GET small via router, ${c} client${c > 1 ? "s" : ""}`, value: r.router, unit: "req/s", baseline: { name: "direct hostfwd port", value: r.direct }, better: "higher" });
      rows.push({ metric: `GET small p50 via router, ${c} client${c > 1 ? "s" : ""}`, value: r.routerP50, unit: "ms", baseline: { name: "direct hostfwd port", value: r.directP50 }, better: "lower" });
    }
    rows.push({ metric: "20 MB download via router", value: median(tpl.bigRouter), unit: "MB/s", baseline: { name: "direct hostfwd port", value: median(tpl.bigDirect) }, better: "higher" });
    rows.push({ metric: "QEMU RSS, idle instance paused", value: tpl.rssPaused, unit: "MB", baseline: { name: "same instance running", value: tpl.rssRunning }, better: "lower" });
    rows.push({ metric: "QEMU RSS, idle instance from a template", value: tpl.rssRunning, unit: "MB", baseline: { name: "cold-booted instance", value: cold.rss }, better: "lower" });

    const s = (xs: number[]) => stats(xs);
    const totalS = (performance.now() - started) / 1000;
    report("lifecycle", rows, {
      runs: RUNS,
      requests: REQUESTS,
      accel: detectAccel().name,
      kernel: assets.kernelVersion,
      total_seconds: Math.round(totalS),
      binary,
      samples_ms: {
        bare_qemu_boot: s(bare),
        cold_boot_to_serving: s(cold.boot),
        template_boot_to_serving: s(tpl.boot),
        aegis_run_true_cold: s(cold.run),
        aegis_run_true_template: s(tpl.run),
        template_build_and_first_run_task: Math.round(tpl.templateBuildMs.task),
        template_build_and_first_start_instance: Math.round(tpl.templateBuildMs.instance),
        running_ttfb: s(tpl.running),
        paused_ttfb: s(tpl.resumed),
        snapshot_restore_wake_ttfb: s(tpl.snapWake),
        snapshot_restore_wake_phases_median_ms: tpl.snapWakePhases,
        secret_wake_cold_ttfb: s(cold.secretWake),
        secret_wake_template_ttfb: s(tpl.secretWake),
      },
      download_mb_s: { router: s(tpl.bigRouter), direct: s(tpl.bigDirect) },
      small_get: tpl.rps,
      notes: [
        "cold: a daemon started with AEGIS_TEMPLATES=0; template: the default daemon (the task and the instance templates are built before timing)",
        "the no-snapshot comparison for a wake is an instance started with --secret, which the idle policy stops without a memory snapshot",
        "wake and first-byte timings use a fresh connection per request (keepalive: false); throughput uses keep-alive clients",
      ],
    });
    log(`done in ${totalS.toFixed(0)} s`);
  } catch (err) {
    failure = err;
  }
  // Clean up whatever happened; a cleanup failure is reported too, never dropped.
  const cleanup: unknown[] = [];
  try {
    await cli.ok(["down"]);
    checkNoLeftoverVms(home);
  } catch (err) {
    cleanup.push(err);
  }
  rmSync(home, { recursive: true, force: true });
  if (failure !== undefined && cleanup.length > 0) throw new AggregateError([failure, ...cleanup], "benchmark and cleanup both failed");
  if (failure !== undefined) throw failure;
  if (cleanup.length > 0) throw cleanup[0];
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  if (err instanceof AggregateError) for (const e of err.errors) process.stderr.write(`  ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});

/**
 * @module bench/wake
 * bench/wake.ts: the idle-stopped -> first byte wake alone (section 3 of
 * bench/lifecycle.ts, without the rest), by phase, optionally A/B against a
 * second aegis binary in the same run. Each binary gets its own private
 * AEGIS_HOME and daemon (templates on, as by default); an instance serving
 * busybox httpd idles 1 s to paused and 1 s more to stopped with its memory
 * snapshot, and is woken by a GET through the router. The binaries take
 * turns, and a wake starts only once every instance is stopped with its
 * snapshot, so no idle-stop snapshot is written during another's wake.
 *
 * Usage: `bun bench/wake.ts [--runs N] [--vs /path/to/other/aegis]
 * [--vs-env KEY=VALUE] [--cold N]` (needs bin/aegis). `--vs-env` starts the
 * second daemon with that variable (with `--vs bin/aegis`: the same binary,
 * e.g. AEGIS_SNAPSHOT_SPLIT=0); `--cold N` then times N cold boots ->
 * serving (AEGIS_TEMPLATES=0) for the ratio (idle-stopped -> first
 * byte / cold boot -> serving, target <= 0.05x). Prints each wake, the
 * per-phase medians from aegisd's log (bench/_wake.ts) and writes
 * bench/results/wake.json.
 */
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Cli, info, startToServing, ttfb, up, waitFor } from "./_instances.ts";
import { report, repoRoot, type Row, stats } from "./_lib.ts";
import { medianPhases, phaseTable, wakeDurations, wakeLines } from "./_wake.ts";

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const RUNS = Number(arg("--runs") ?? 5);
const log = (m: string) => process.stderr.write(`bench: ${m}\n`);

interface Side {
  label: string;
  cli: Cli;
  router: string;
  id: string;
  ttfb: number[];
  phases: Record<string, number>[];
}

function privateCli(label: string, binary: string): Cli {
  const home = mkdtempSync(join(tmpdir(), `aw-${label}-`));
  const bin = join(home, "aegis");
  copyFileSync(binary, bin); // a rebuild during the run must not change what is measured
  return new Cli(bin, home);
}

async function prepare(label: string, binary: string, env: Record<string, string> = {}): Promise<Side> {
  const cli = privateCli(label, binary);
  const home = cli.home;
  const { router } = await up(cli, env);
  const t0 = performance.now();
  await startToServing(cli, router, "warm"); // builds the instance template
  await cli.ok(["instance", "delete", "warm"]);
  log(`${label}: template built + first start ${(performance.now() - t0).toFixed(0)} ms (${home})`);
  await startToServing(cli, router, "snap", ["--pause-after", "1", "--stop-after", "1"]);
  return { label, cli, router, id: (await info(cli, "snap")).id, ttfb: [], phases: [] };
}

const stoppedWithSnapshot = (s: Side) => waitFor(s.cli, "snap", "stopped with a snapshot", (x) => x.state === "stopped" && x.has_snapshot);

/** How many times aegisd logged `instance restored` for the instance (every aegis version logs it). */
function restores(s: Side): number {
  const path = join(s.cli.home, "data", "aegisd.log");
  return readFileSync(path, "utf8").split("\n").filter((l) => l.includes('"msg":"instance restored"') && l.includes(s.id)).length;
}

async function wakeOnce(s: Side): Promise<void> {
  const before = wakeLines(s.cli.home, s.id).length;
  const restored = restores(s);
  const ms = await ttfb(`${s.router}/snap/`);
  if (restores(s) !== restored + 1) throw new Error(`${s.label}: the wake did not restore the snapshot (see ${s.cli.home}/data/aegisd.log)`);
  // An aegis older than the wake trace logs no phases.
  const line = wakeLines(s.cli.home, s.id)[before];
  s.ttfb.push(ms);
  s.phases.push(line ? wakeDurations(line, ms) : {});
  log(`${s.label}: wake ${ms.toFixed(0)} ms`);
}

async function main(): Promise<void> {
  const built = join(repoRoot, "bin", "aegis");
  if (!existsSync(built)) throw new Error(`${built} is missing: run \`make build\` first`);
  const other = arg("--vs");
  const vsEnv = arg("--vs-env");
  const coldRuns = Number(arg("--cold") ?? 0);
  const sides: Side[] = [];
  const cold: number[] = [];
  try {
    sides.push(await prepare("this", built));
    if (other) sides.push(await prepare("vs", other, vsEnv ? { [vsEnv.split("=")[0]!]: vsEnv.slice(vsEnv.indexOf("=") + 1) } : {}));
    for (let i = 0; i < RUNS; i++) {
      for (const s of i % 2 ? [...sides].reverse() : sides) {
        for (const t of sides) await stoppedWithSnapshot(t);
        await wakeOnce(s);
      }
    }
    for (const s of sides) await s.cli.ok(["down"]);
    if (coldRuns > 0) {
      const c = privateCli("cold", built);
      sides.push({ label: "cold", cli: c, router: "", id: "", ttfb: [], phases: [] }); // cleaned up below
      const { router } = await up(c, { AEGIS_TEMPLATES: "0" });
      for (let i = 0; i < coldRuns; i++) {
        cold.push(await startToServing(c, router, `cold${i}`));
        log(`cold boot -> serving: ${cold.at(-1)!.toFixed(0)} ms`);
        await c.ok(["instance", "delete", `cold${i}`]);
      }
      sides.pop();
      await c.ok(["down"]);
      rmSync(c.home, { recursive: true, force: true });
    }
    const rows: Row[] = [];
    const extra: Record<string, unknown> = { runs: RUNS, vs: other ?? null, vs_env: vsEnv ?? null, ...(cold.length ? { cold_boot_to_serving_ms: stats(cold) } : {}) };
    for (const s of sides) {
      const med = medianPhases(s.phases);
      process.stdout.write(`\n${s.label} (${s.cli.home}): wake median ${stats(s.ttfb).median.toFixed(0)} ms, runs ${s.ttfb.map((x) => x.toFixed(0)).join(", ")}\n${phaseTable(med)}\n`);
      extra[s.label] = { ttfb_ms: stats(s.ttfb), phases_median_ms: med };
    }
    const [a, b] = sides;
    rows.push({ metric: "idle-stopped -> first byte, snapshot restore", value: stats(a!.ttfb).median, unit: "ms", ...(b ? { baseline: { name: `--vs ${other}`, value: stats(b.ttfb).median } } : {}), better: "lower" });
    if (cold.length) rows.push({ metric: "idle-stopped -> first byte / cold boot -> serving", value: stats(a!.ttfb).median, unit: "ms", baseline: { name: "cold boot -> serving (AEGIS_TEMPLATES=0)", value: stats(cold).median }, better: "lower" });
    process.stdout.write("\n");
    report("wake", rows, extra);
  } finally {
    for (const s of sides) {
      await s.cli.ok(["down"]).catch((err: unknown) => log(`${s.label}: aegis down failed: ${String(err)}`));
      rmSync(s.cli.home, { recursive: true, force: true });
    }
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});

/**
 * @module bench/template-start
 * Where a task's start from a template goes, host and guest side: the
 * backend-level path `aegis run -- true` takes (QemuBackend.bootFromTemplate
 * of the default task shape: base rootfs, 512 MB, 1 vCPU, no overlay disk,
 * then `true` as the primary process until its exit arrives).
 * Host phases (ms since QEMU spawn, QemuVm.bootPhases): QMP connected,
 * migration loaded, resumed, first ping; then the `setup` RPC and the first
 * process (spawn request -> exit notification) each on its own.
 * Guest phases (console lines of guest/harness/phase-log.ts): the `setup`
 * handler step by step, the `setup` and first `run` requests (parse,
 * handler, send) and the first process (resolve, spawn, exit, drain).
 * Usage: `bun bench/template-start.ts [--runs N] [--vs OTHER_AEGIS_BINARY]`
 * (needs bin/aegis). With `--vs`, a second template is built from the other
 * binary's harness (same host code: this checkout's backend) and the two
 * alternate run by run, A B A B, so a guest-side change is compared in the
 * same conditions. Prints the median of every phase; writes
 * bench/results/template-start.json.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureGuestAssets } from "../src/vmm/assets/index.ts";
import { startGuestProcess } from "../src/vmm/guest-process.ts";
import { QemuBackend } from "../src/vmm/qemu.ts";
import { parsePhaseLine } from "../guest/harness/phase-log.ts";
import { report, repoRoot, stats } from "./_lib.ts";

const flag = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const RUNS = Number(flag("--runs") ?? 5);
const VS = flag("--vs");
const log = (m: string) => process.stderr.write(`bench: ${m}\n`);

/** The guest phase lines of one VM's console, waited for (bounded): the first process's line comes last. */
async function guestPhases(consoleLog: string): Promise<Record<string, Record<string, number>>> {
  const what = ["setup", "rpc setup", "rpc run", "first process"];
  for (let i = 0; ; i++) {
    const text = readFileSync(consoleLog, "utf8");
    const found = Object.fromEntries(what.map((w) => [w, parsePhaseLine(text, w)]));
    if (what.every((w) => found[w]) || i >= 100) return found as Record<string, Record<string, number>>;
    await Bun.sleep(20);
  }
}

/** Median of each key over records (keys missing in some records count where present). */
function medians(xs: Record<string, number>[]): Record<string, number> {
  const keys = [...new Set(xs.flatMap((x) => Object.keys(x)))];
  return Object.fromEntries(keys.map((k) => [k, Math.round(stats(xs.map((x) => x[k]).filter((v): v is number => v !== undefined)).median * 10) / 10]));
}

/** One harness binary under test: its backend (own assets and template) and what its runs measured. */
interface Side {
  name: string;
  backend: QemuBackend;
  total: number[];
  host: Record<string, number>[];
  guest: Record<string, Record<string, number>[]>;
}

const SHAPE = { memoryMb: 512, vcpus: 1 };

function side(name: string, bin: string, work: string): Side {
  const dir = join(work, name);
  // Memoised: the backend asks for the assets on every boot.
  let assets: ReturnType<typeof ensureGuestAssets> | undefined;
  const backend = new QemuBackend({ assets: () => (assets ??= ensureGuestAssets({ dir: join(dir, "guest"), binary: bin, progress: log })), templatesDir: join(dir, "templates") });
  return { name, backend, total: [], host: [], guest: {} };
}

/** One task-shaped start from the template, `true` as the primary process, until its exit arrives. */
async function runOnce(s: Side, work: string, i: number): Promise<void> {
  const id = `${s.name}${i}`;
  const t0 = performance.now();
  const vm = await s.backend.bootFromTemplate({ id, runDir: join(work, s.name, id), ...SHAPE, ports: [], hostname: id });
  const tRun = performance.now();
  const p = await startGuestProcess(vm.channel, { argv: ["true"], primary: true });
  const exit = await p.exited;
  if (exit.code !== 0) throw new Error(`true exited ${exit.code}`);
  const t1 = performance.now();
  s.total.push(t1 - t0);
  s.host.push({ ...vm.bootPhases, firstProcess: t1 - tRun });
  for (const [k, v] of Object.entries(await guestPhases(vm.consoleLog))) if (v) (s.guest[k] ??= []).push(v);
  vm.kill();
  await vm.exited;
  log(`${s.name} run ${i}: ${(t1 - t0).toFixed(0)} ms`);
}

function print(s: Side): void {
  const phaseLine = (ph: Record<string, number>) => Object.entries(ph).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(", ");
  process.stdout.write(`\n[${s.name}] template start by phase (medians of ${s.total.length}; host ms since spawn, setupRpc/firstProcess own)\n`);
  process.stdout.write(`host: ${phaseLine(medians(s.host))}\n`);
  for (const [k, xs] of Object.entries(s.guest)) process.stdout.write(`guest ${k}: ${phaseLine(medians(xs))}\n`);
}

async function main(): Promise<void> {
  const bin = join(repoRoot, "bin", "aegis");
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run \`make build\` first`);
  if (VS && !existsSync(VS)) throw new Error(`--vs ${VS}: no such file`);
  const work = mkdtempSync(join(tmpdir(), "agts-"));
  const sides = [side("a", bin, work), ...(VS ? [side("b", VS, work)] : [])];
  try {
    for (const s of sides) {
      const tBuild = performance.now();
      await s.backend.warmTemplate(SHAPE);
      log(`${s.name}: template built in ${(performance.now() - tBuild).toFixed(0)} ms`);
    }
    for (let i = 0; i < RUNS; i++) for (const s of sides) await runOnce(s, work, i);
    for (const s of sides) print(s);
    const [a, b] = sides as [Side, Side | undefined];
    report(
      "template-start",
      [
        {
          metric: "template start -> setup -> `true` exited (backend)",
          value: stats(a.total).median,
          unit: "ms",
          ...(b ? { baseline: { name: `harness of ${VS}`, value: stats(b.total).median } } : {}),
          better: "lower",
        },
      ],
      Object.fromEntries(
        sides.map((s) => [s.name, { host_phases_median_ms: medians(s.host), guest_phases_median_ms: Object.fromEntries(Object.entries(s.guest).map(([k, xs]) => [k, medians(xs)])), runs: s.total }]),
      ),
    );
    if (b) {
      const ratios = a.total.map((x, i) => x / b.total[i]!);
      process.stdout.write(`a/b pair by pair: ${ratios.map((r) => r.toFixed(2)).join(", ")} (median ${stats(ratios).median.toFixed(2)})\n`);
    }
  } finally {
    for (const s of sides) await s.backend.killAll();
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});

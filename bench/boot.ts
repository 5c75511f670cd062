/**
 * @module bench/boot
 * Cold-boot benchmark of the QEMU backend, against a baseline measured in the
 * same run: the same kernel and initramfs booting a trivial /init that powers
 * off at once (the floor the harness adds to). Reports min/median of:
 * - baseline: QEMU spawn -> QEMU exit (kernel boot + immediate reboot),
 * - boot: QEMU spawn -> harness `ready` (QemuBackend.boot),
 * - task: spawn -> `true` run as the primary process -> VM gone,
 * - `aegis run -- true` end to end through the daemon (when the CLI supports it),
 * - `exec true` round trip in a running VM, control-channel ping RTT,
 * - QEMU RSS of an idle VM,
 * - memory snapshot (zstd) of that idle VM, and restore -> harness answering
 *   (the stopped-instance wake path), against the cold boot above,
 * - start from a template snapshot (bootFromTemplate: restore + `setup` with
 *   a fresh overlay disk) -> usable, and the one-off template build.
 * Cold boots are broken down by phase (bench/_phases.ts: QEMU start + kernel
 * decompression, kernel to /init, module loading, tools disk mount, harness
 * load, harness setup, port + ready, handlers loaded after ready, first RPC) next to the baseline's own
 * kernel-to-/init time; restores by phase (QEMU start to QMP, incoming
 * migration incl. decompression, resume, first ping and clock; a template
 * clone's setup request (its first) and clock instead), with
 * host-side `zstd -dc` of the same snapshot and a raw (uncompressed) restore
 * of it alternating with the zstd one, in the same run.
 * Usage: `bun run bench/boot.ts [--runs N]` (needs bin/aegis). Writes bench/results/boot.json.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { ensureGuestAssets } from "../src/vmm/assets/index.ts";
import { sourceRoot } from "../src/paths.ts";
import { runInGuest, startGuestProcess } from "../src/vmm/guest-process.ts";
import { QemuBackend, type QemuVm } from "../src/vmm/qemu.ts";
import { readSnapshotMeta, writeSnapshotMeta } from "../src/vmm/snapshot-file.ts";
import { baselineBootPhases, baselineInitrd } from "./_baseline.ts";
import { parseBootPhases, type BootPhases } from "./_phases.ts";

interface Stat {
  n: number;
  min: number;
  median: number;
  max: number;
}

function stat(xs: number[]): Stat {
  const s = [...xs].sort((a, b) => a - b);
  const r = (v: number) => Math.round(v * 100) / 100;
  return { n: s.length, min: r(s[0]!), median: r(s[Math.floor((s.length - 1) / 2)]!), max: r(s.at(-1)!) };
}

function flagNumber(name: string, dflt: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}

/** Median of each key over a list of records with the same keys. */
function medianBy<K extends string>(xs: Array<Record<K, number>>): Record<K, number> {
  const out = {} as Record<K, number>;
  for (const k of Object.keys(xs[0] ?? {}) as K[]) out[k] = stat(xs.map((x) => x[k])).median;
  return out;
}

/** Wait (bounded) until the harness's boot line is on the console, then parse the phases. */
async function bootPhasesOf(vm: QemuVm, bootMs: number): Promise<BootPhases> {
  for (let i = 0; i < 100; i++) {
    const p = parseBootPhases(readFileSync(vm.consoleLog, "utf8"), bootMs);
    if (p) return p;
    await Bun.sleep(20);
  }
  throw new Error(`no boot phase lines in ${vm.consoleLog}`);
}

/** Host time of `zstd -dc file > /dev/null` (the decompression a zstd restore streams through). */
async function zstdDecompressMs(file: string): Promise<number> {
  const t0 = performance.now();
  const p = Bun.spawn(["zstd", "-dc", file], { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
  if ((await p.exited) !== 0) throw new Error(`zstd -dc ${file} failed`);
  return performance.now() - t0;
}

function rssMb(pid: number): number {
  const m = readFileSync(`/proc/${pid}/status`, "utf8").match(/^VmRSS:\s+(\d+) kB/m);
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
}

async function aegisRunTrue(bin: string, home: string): Promise<number> {
  const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root", AEGIS_HOME: home };
  const t0 = performance.now();
  const proc = Bun.spawn([bin, "run", "--", "true"], { env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`aegis run -- true exited ${code}: ${err.trim()}`);
  return performance.now() - t0;
}

async function main(): Promise<void> {
  const runs = flagNumber("--runs", 5);
  const bin = join(sourceRoot, "bin", "aegis");
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run \`bun run build.ts\` first`);
  const work = mkdtempSync(join(tmpdir(), "agb-"));
  const log = (m: string) => process.stderr.write(`bench: ${m}\n`);
  let backend: QemuBackend | undefined;
  try {
    const assets = await ensureGuestAssets({ dir: join(work, "guest"), binary: bin, progress: log });
    const initrd = await baselineInitrd(work);
    backend = new QemuBackend({ assets });
    const baseline: number[] = [];
    const baselineInit: number[] = [];
    const boot: number[] = [];
    const guestReady: number[] = [];
    // handlersLoad is NaN for a harness that does not report it.
    const phases: Array<BootPhases & { firstRpc: number; handlersLoad: number }> = [];
    for (let i = 0; i < runs; i++) {
      const bb = await baselineBootPhases(assets, initrd, join(work, `b${i}`));
      baseline.push(bb.ms);
      if (bb.initUptimeMs !== undefined) baselineInit.push(bb.initUptimeMs);
      const vm = (await backend.boot({ id: `r${i}`, runDir: join(work, `r${i}`), memoryMb: 512, vcpus: 1, rootfs: assets.baseRootfs, ports: [], hostname: `r${i}` })) as QemuVm;
      const tPing = performance.now();
      await vm.channel.call("ping");
      const firstRpc = performance.now() - tPing;
      boot.push(vm.bootMs);
      guestReady.push((await vm.channel.waitReady()).uptime_ms);
      const p = await bootPhasesOf(vm, vm.bootMs);
      phases.push({ ...p, handlersLoad: p.handlersLoad ?? NaN, firstRpc });
      if (i < runs - 1) {
        vm.kill();
        await vm.exited;
        continue;
      }
      // The last VM also serves the in-VM measurements.
      const execTrue: number[] = [];
      for (let j = 0; j < 20; j++) {
        const t0 = performance.now();
        const r = await runInGuest(vm.channel, { argv: ["true"] });
        if (r.code !== 0) throw new Error(`true exited ${r.code}`);
        execTrue.push(performance.now() - t0);
      }
      const ping: number[] = [];
      for (let j = 0; j < 50; j++) {
        const t0 = performance.now();
        await vm.channel.call("ping");
        ping.push(performance.now() - t0);
      }
      await Bun.sleep(3000);
      const rss = rssMb(vm.pid);
      const snapFile = join(work, "idle.snap.zst");
      const tSnap = performance.now();
      await vm.snapshot(snapFile);
      const snapshotMs = performance.now() - tSnap;
      const snapshotMb = Math.round(statSync(snapFile).size / 1024 / 1024);
      // The same paused state uncompressed (A/B of the decompression; QEMU migrates a VM only once).
      const rawFile = join(work, "idle.snap");
      const unz = Bun.spawn(["zstd", "-dq", "-o", rawFile, snapFile], { stdin: "ignore", stdout: "ignore", stderr: "inherit" });
      if ((await unz.exited) !== 0) throw new Error(`zstd -d ${snapFile} failed`);
      writeSnapshotMeta(rawFile, { ...readSnapshotMeta(snapFile)!, bytes: statSync(rawFile).size });
      const rawMb = Math.round(statSync(rawFile).size / 1024 / 1024);
      vm.kill();
      await vm.exited;
      const restore: number[] = [];
      const restoreRaw: number[] = [];
      const restorePhases: Array<Record<string, number>> = [];
      const restoreRawPhases: Array<Record<string, number>> = [];
      const decompress: number[] = [];
      for (let j = 0; j < runs; j++) {
        for (const [file, into, intoPhases] of [[snapFile, restore, restorePhases], [rawFile, restoreRaw, restoreRawPhases]] as const) {
          // Same id/runDir/spec as the snapshotted VM: a restore must match it exactly.
          const rvm = (await backend.boot({ id: `r${i}`, runDir: join(work, `r${i}`), memoryMb: 512, vcpus: 1, rootfs: assets.baseRootfs, ports: [], hostname: `r${i}`, restoreFrom: file })) as QemuVm;
          into.push(rvm.bootMs);
          intoPhases.push(rvm.bootPhases);
          rvm.kill();
          await rvm.exited;
        }
        decompress.push(await zstdDecompressMs(snapFile));
      }
      const tplSpec = (id: string) => ({ id, runDir: join(work, id), memoryMb: 512, vcpus: 1, rootfs: assets.baseRootfs, ports: [], hostname: id, overlayDisk: join(work, id, "overlay.ext4") });
      const tBuild = performance.now();
      const first = await backend.bootFromTemplate(tplSpec("tpl0"));
      const templateBuildMs = performance.now() - tBuild;
      first.kill();
      await first.exited;
      const fromTemplate: number[] = [];
      const templatePhases: Array<Record<string, number>> = [];
      for (let j = 1; j <= runs; j++) {
        const t0 = performance.now();
        const tvm = await backend.bootFromTemplate(tplSpec(`tpl${j}`));
        const tExec = performance.now();
        await runInGuest(tvm.channel, { argv: ["true"] });
        fromTemplate.push(performance.now() - t0);
        templatePhases.push({ ...tvm.bootPhases, firstExec: performance.now() - tExec });
        tvm.kill();
        await tvm.exited;
      }
      log(`boot runs done; measuring task VMs`);

      const task: number[] = [];
      for (let j = 0; j < Math.min(3, runs); j++) {
        const t0 = performance.now();
        const tvm = await backend.boot({ id: `t${j}`, runDir: join(work, `t${j}`), memoryMb: 512, vcpus: 1, rootfs: assets.baseRootfs, ports: [], hostname: `t${j}` });
        const p = await startGuestProcess(tvm.channel, { argv: ["true"], primary: true });
        await p.exited;
        await tvm.exited;
        task.push(performance.now() - t0);
      }

      let aegisRun: Stat | { error: string };
      const home = join(work, "home");
      try {
        // Router on a free port: another daemon on this machine may hold the default one.
        const up = Bun.spawn([bin, "up"], { env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/root", AEGIS_HOME: home, AEGIS_ROUTER_PORT: "0" }, stdin: "ignore", stdout: "ignore", stderr: "pipe" });
        const [upErr, upCode] = await Promise.all([new Response(up.stderr).text(), up.exited]);
        if (upCode !== 0) throw new Error(`aegis up exited ${upCode}: ${upErr.trim()}`);
        const xs: number[] = [];
        for (let j = 0; j < Math.min(3, runs); j++) xs.push(await aegisRunTrue(bin, home));
        aegisRun = stat(xs);
      } catch (err) {
        aegisRun = { error: err instanceof Error ? err.message : String(err) };
        log(`aegis run -- true not measured: ${aegisRun.error}`);
      } finally {
        const down = Bun.spawn([bin, "down"], { env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/root", AEGIS_HOME: home }, stdin: "ignore", stdout: "ignore", stderr: "ignore" });
        await down.exited;
      }

      const b = stat(baseline);
      const r = stat(boot);
      const results = {
        date: new Date().toISOString(),
        accel: backend.accel,
        kernel: assets.kernelVersion,
        runs,
        baseline_spawn_to_exit_ms: b,
        boot_spawn_to_ready_ms: r,
        guest_uptime_at_ready_ms: stat(guestReady),
        harness_overhead_median_ms: Math.round(r.median - b.median),
        ratio_boot_to_baseline_median: Math.round((r.median / b.median) * 100) / 100,
        task_true_spawn_to_gone_ms: stat(task),
        aegis_run_true_ms: aegisRun,
        exec_true_roundtrip_ms: stat(execTrue),
        ping_rtt_ms: stat(ping),
        qemu_rss_idle_mb: rss,
        snapshot_idle_ms: Math.round(snapshotMs),
        snapshot_idle_zstd_mb: snapshotMb,
        snapshot_idle_raw_mb: rawMb,
        restore_spawn_to_answering_ms: stat(restore),
        restore_raw_spawn_to_answering_ms: stat(restoreRaw),
        restore_phases_median_ms: { zstd: medianBy(restorePhases), raw: medianBy(restoreRawPhases), host_zstd_dc_ms: stat(decompress).median },
        template_phases_median_ms: medianBy(templatePhases),
        boot_phases_median_ms: medianBy(phases),
        baseline_init_uptime_median_ms: baselineInit.length ? stat(baselineInit).median : null,
        ratio_cold_boot_to_restore_median: Math.round((r.median / stat(restore).median) * 10) / 10,
        template_build_and_first_start_ms: Math.round(templateBuildMs),
        template_start_to_first_exec_ms: stat(fromTemplate),
        ratio_cold_boot_to_template_start_median: Math.round((r.median / stat(fromTemplate).median) * 10) / 10,
      };
      const rows: [string, string][] = [
        ["baseline: spawn -> trivial init powers off", fmt(b)],
        ["boot: spawn -> harness ready", fmt(r)],
        ["  guest uptime at ready", fmt(results.guest_uptime_at_ready_ms)],
        ["  harness overhead (median - baseline)", `${results.harness_overhead_median_ms} ms (x${results.ratio_boot_to_baseline_median})`],
        ["task: spawn -> `true` -> VM gone", fmt(results.task_true_spawn_to_gone_ms)],
        ["aegis run -- true (CLI+daemon)", "error" in aegisRun ? `n/a (${aegisRun.error.split("\n")[0]!.slice(0, 60)})` : fmt(aegisRun)],
        ["exec true round trip", fmt(results.exec_true_roundtrip_ms)],
        ["control ping RTT", fmt(results.ping_rtt_ms)],
        ["QEMU RSS, idle VM (512 MB guest)", `${rss} MB`],
        ["snapshot of the idle VM (zstd)", `${results.snapshot_idle_ms} ms, ${snapshotMb} MB`],
        ["restore: spawn -> harness answers", `${fmt(results.restore_spawn_to_answering_ms)} (cold boot / restore x${results.ratio_cold_boot_to_restore_median})`],
        ["template: build once + first start", `${results.template_build_and_first_start_ms} ms`],
        ["from template: spawn -> setup -> `true` ran", `${fmt(results.template_start_to_first_exec_ms)} (cold boot / this x${results.ratio_cold_boot_to_template_start_median})`],
      ];
      const bp = results.boot_phases_median_ms;
      const bInit = results.baseline_init_uptime_median_ms;
      const phaseRows: [string, string][] = [
        ["QEMU start + firmware + kernel decompression", `${bp.qemuAndDecompress.toFixed(0)} ms` + (bInit !== null ? ` (baseline: ${(b.median - bInit).toFixed(0)} ms incl. its power-off)` : "")],
        ["kernel boot -> /init", `${bp.kernelToInit.toFixed(0)} ms` + (bInit !== null ? ` (baseline: ${bInit.toFixed(0)} ms)` : "")],
        ["/init: module loading", `${bp.moduleLoading.toFixed(0)} ms`],
        ["/init: find + mount tools disk", `${bp.toolsMount.toFixed(0)} ms`],
        ["exec -> harness main (ELF page-in, Bun start, imports)", `${bp.harnessLoad.toFixed(0)} ms`],
        ["harness setup (tmpfs, rootfs overlay, network)", `${bp.harnessSetup.toFixed(0)} ms`],
        ["open control port + ready", `${bp.portAndReady.toFixed(0)} ms`],
        ...(!Number.isNaN(bp.handlersLoad) ? [["ready -> request handlers loaded (guest)", `${bp.handlersLoad.toFixed(0)} ms`] as [string, string]] : []),
        ["first RPC (ping) after ready", `${bp.firstRpc.toFixed(1)} ms`],
      ];
      const phaseLine = (ph: Record<string, number>) => Object.entries(ph).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(", ");
      const restoreRows: [string, string][] = [
        ["zstd (ms since spawn)", phaseLine(results.restore_phases_median_ms.zstd)],
        ["raw (ms since spawn)", phaseLine(results.restore_phases_median_ms.raw)],
        ["host zstd -dc of the snapshot", `${results.restore_phases_median_ms.host_zstd_dc_ms.toFixed(0)} ms`],
        ["template start (since spawn; setupRpc/firstExec own)", phaseLine(results.template_phases_median_ms)],
      ];
      const table = (title: string, rs: [string, string][]) => {
        const w = Math.max(...rs.map(([k]) => k.length));
        process.stdout.write(`\n${title}\n`);
        for (const [k, v] of rs) process.stdout.write(`${k.padEnd(w)}  ${v}\n`);
      };
      rows.splice(11, 0, ["restore raw (same state, uncompressed)", `${fmt(results.restore_raw_spawn_to_answering_ms)}, ${rawMb} MB`]);
      table(`Aegis boot benchmark (${backend.accel.name}, kernel ${assets.kernelVersion}, runs=${runs})`, rows);
      table("Cold boot by phase (medians; guest clock + host spawn -> ready)", phaseRows);
      table("Restore by phase (medians)", restoreRows);
      const outDir = resolve(sourceRoot, "bench", "results");
      mkdirSync(outDir, { recursive: true });
      writeFileSync(join(outDir, "boot.json"), `${JSON.stringify(results, null, 2)}\n`);
      process.stdout.write(`\nwrote ${join(outDir, "boot.json")}\n`);
    }
  } finally {
    await backend?.killAll(); // a failed run must not leave VMs behind
    rmSync(work, { recursive: true, force: true });
  }
}

function fmt(s: Stat): string {
  return `min ${s.min.toFixed(1)}  median ${s.median.toFixed(1)}  max ${s.max.toFixed(1)} ms (n=${s.n})`;
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});

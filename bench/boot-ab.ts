/**
 * @module bench/boot-ab
 * A/B cold boots of two (or more) aegis binaries as the guest harness, runs
 * interleaved (A B A B ...) so drift on a shared host hits both alike. Each
 * binary gets its own guest assets (same kernel, modules and initramfs
 * inputs; its own tools disk). Prints per-phase medians (bench/_phases.ts),
 * the harness's own "since exec" marks and first RPC, and per-pair ratios
 * against the first binary of spawn -> ready, of the harness load, and of
 * /init's exec of the harness -> its first answer (the harness's whole share).
 * `BIN@INITRD` boots BIN with another initramfs (A/B of /init changes: build
 * the other one with the other code first).
 * Usage: `bun run bench/boot-ab.ts [--runs N] BIN_A[@INITRD] BIN_B[@INITRD] ...`.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { ensureGuestAssets, type GuestAssets } from "../src/vmm/assets/index.ts";
import { QemuBackend, type QemuVm } from "../src/vmm/qemu.ts";
import { parseBootPhases } from "./_phases.ts";

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)]!;
}

/** The harness's "since exec" line: ms since its process started at each mark. */
function sinceExec(text: string): Record<string, number> {
  const m = text.match(/aegis-harness: since exec: (.*)/);
  const out: Record<string, number> = {};
  for (const part of m?.[1]?.split(",") ?? []) {
    const mm = part.trim().match(/^(.*) (\d+) ms$/);
    if (mm) out[`exec->${mm[1]}`] = Number(mm[2]);
  }
  return out;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const ri = args.indexOf("--runs");
  const runs = ri >= 0 ? Number(args.splice(ri, 2)[1]) : 3;
  const specs = args.map((a) => {
    const [bin, initrd] = a.split("@") as [string, string?];
    return { bin: resolve(bin), initrd: initrd ? resolve(initrd) : undefined };
  });
  const bins = specs.map((s) => (s.initrd ? `${s.bin}@${s.initrd}` : s.bin));
  if (bins.length < 1) throw new Error("usage: bun run bench/boot-ab.ts [--runs N] BIN_A [BIN_B ...]");
  const work = mkdtempSync(join(tmpdir(), "agab-"));
  const log = (m: string) => process.stderr.write(`boot-ab: ${m}\n`);
  const backends: QemuBackend[] = [];
  try {
    const assets: GuestAssets[] = [];
    for (const [i, { bin, initrd }] of specs.entries()) {
      const a = await ensureGuestAssets({ dir: join(work, `g${i}`), binary: bin, progress: log });
      assets.push(initrd ? { ...a, initrd } : a);
    }
    for (const a of assets) backends.push(new QemuBackend({ assets: a }));
    const rows: Array<Array<Record<string, number>>> = bins.map(() => []);
    for (let r = 0; r < runs; r++) {
      for (const [i, backend] of backends.entries()) {
        const id = `v${i}-${r}`;
        const vm = (await backend.boot({ id, runDir: join(work, id), memoryMb: 512, vcpus: 1, rootfs: assets[i]!.baseRootfs, ports: [], hostname: id })) as QemuVm;
        const t = performance.now();
        await vm.channel.call("ping");
        const firstRpc = performance.now() - t;
        let phases;
        for (let k = 0; k < 100 && !phases; k++) {
          phases = parseBootPhases(readFileSync(vm.consoleLog, "utf8"), vm.bootMs);
          if (!phases) await Bun.sleep(20);
        }
        if (!phases) throw new Error(`no phase lines in ${vm.consoleLog}`);
        const row = { spawnToReady: vm.bootMs, ...phases, firstRpc, ...sinceExec(readFileSync(vm.consoleLog, "utf8")) };
        rows[i]!.push(row);
        log(`${bins[i]} run ${r}: ${Object.entries(row).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(", ")}`);
        vm.kill();
        await vm.exited;
      }
    }
    const keys = [...new Set(rows.flatMap((rs) => rs.flatMap((x) => Object.keys(x))))];
    const w = Math.max(...keys.map((k) => k.length));
    process.stdout.write(`\nmedians over ${runs} interleaved runs (ms)\n${"".padEnd(w)}  ${bins.map((b, i) => `${String.fromCharCode(65 + i)}`.padStart(8)).join("")}\n`);
    for (const k of keys) process.stdout.write(`${k.padEnd(w)}  ${rows.map((rs) => median(rs.map((x) => x[k] ?? NaN)).toFixed(0).padStart(8)).join("")}\n`);
    for (let i = 1; i < bins.length; i++) {
      const ratios = rows[i]!.map((x, r) => x.spawnToReady! / rows[0]![r]!.spawnToReady!);
      const h = rows[i]!.map((x, r) => x.harnessLoad! / rows[0]![r]!.harnessLoad!);
      // /init's exec of the harness -> its first answer: the harness's whole share, without the host- and kernel-side noise.
      const answer = (x: Record<string, number>) => x.harnessLoad! + x.harnessSetup! + x.portAndReady! + x.firstRpc!;
      const a = rows[i]!.map((x, r) => answer(x) / answer(rows[0]![r]!));
      process.stdout.write(`${String.fromCharCode(65 + i)}/A per-pair median: spawn->ready ${median(ratios).toFixed(2)}, harness load ${median(h).toFixed(2)}, exec -> first answer ${median(a).toFixed(2)}\n`);
    }
    bins.forEach((b, i) => process.stdout.write(`${String.fromCharCode(65 + i)} = ${b}\n`));
  } finally {
    for (const b of backends) await b.killAll();
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`boot-ab failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});

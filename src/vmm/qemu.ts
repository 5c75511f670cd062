/**
 * @module vmm/qemu
 * The QEMU backend: one `qemu-system-<arch>` process per VM (command line in
 * qemu-args.ts). Boot sequence:
 *   1. listen on `<runDir>/ctl.sock` (QEMU connects to us),
 *   2. start virtiofsd when a workspace is shared,
 *   3. spawn QEMU detached in its own process group, stdin ignored (an
 *      inherited stdin hangs QEMU before the guest runs), stdout/stderr to
 *      `<runDir>/qemu.log`, an explicit minimal environment,
 *   4. wait for the harness's `ready`; the boot watchdog kills the process
 *      group and retries once when it does not come in time (a TCG boot that
 *      misses the PIT calibration window can hang forever).
 * The guest console goes to `<runDir>/console.log` and is kept after exit
 * (for `aegis logs` and for crash messages). It is a bounded ring: QEMU
 * appends, and the VM rotates it every second once it passes
 * `CONSOLE_MAX_BYTES` (qemu-vm.ts, 1 MiB; control/file-ring.ts; the previous generation
 * is `console.1.log`), because a guest can print to its console as fast as
 * the emulated UART goes (~0.4 MB/s under TCG) for as long as it runs.
 * Crash messages read the tail only.
 *
 * Per-instance disk (`spec.overlayDisk`): created on first boot (sparse
 * ext4, overlay-disk.ts) and attached writable with serial `aegis-overlay`;
 * the harness uses it as the overlayfs upper layer over the read-only image.
 *
 * Workspace (`spec.workspace`): virtiofsd (virtiofsd.ts) + a shared memfd
 * RAM backend + `vhost-user-fs-device` tag `workspace`, mounted by the
 * harness at /workspace.
 *
 * Snapshots (`Vm.snapshot`, snapshot-file.ts): QMP `stop`, `migrate` to a
 * unix socket we write to a file, metadata beside it. Restore
 * (`spec.restoreFrom`): the metadata is checked against the spec and the
 * disks first (`SnapshotStaleError`), then the same command line plus
 * `-incoming`: `fd:3` for an uncompressed snapshot (aegisd opens the file,
 * QEMU reads it as a file channel), `exec:zstd -dc` for a `.zst` one, or,
 * for a split snapshot (`.dev` + `.ram`, snapshot-split.ts), the RAM file
 * mapped copy-on-write and `-incoming defer` with `x-ignore-shared`, as a
 * template clone. The snapshot was taken paused, so we wait for QMP
 * `query-status` to leave `inmigrate`, `cont`, and set the guest's clock
 * (it stood still since the snapshot): that `clock.set` is also the first
 * answer that shows the harness is back (its port reconnects to our new
 * listener by itself). A template clone is pinged instead, its `setup`
 * follows. Each phase end is in `QemuVm.bootMarks` (the wake trace).
 *
 * What the wake of an idle-stopped instance costs, by phase (bench/wake.ts,
 * medians of 4, a 512 MB instance from a template, on 2 cores shared with
 * other work at load 7-13, so absolute values are inflated; aegisd's log
 * `instance wake` has them per wake). Before (main): network 33, QEMU start
 * -> QMP 126, incoming migration (`exec:cat`, ~200 MB) 309, first ping 80,
 * clock 17, consumed snapshot's unlink 47-60, port.wait 30, router + first
 * byte 87 ms. With `fd:3` the same load took 162 ms; split, the load is the
 * device state only (34 ms at load 13), the guest then faults its pages in
 * from the file's page cache as it touches them; the unlink happens 3 s
 * later, the ping and the port.wait are gone (the restored guest is the one
 * whose port was seen accepting). Same run, 5 wakes each, load 5-9: split
 * vs whole-stream (AEGIS_SNAPSHOT_SPLIT=0, fd:3) load 18 vs 243 ms, first
 * answer 239 vs 264, router + first byte 216 vs 206; this branch against
 * main, wake 855 vs 1817 ms median (0.47x), and 0.04x of a cold boot ->
 * serving timed in the same run (23.7 s there, TCG under load). What is left
 * is QEMU's own start (~100 ms), the guest's first RPC after a restore (its
 * TCG translation cache starts empty, and it faults its pages in) and the
 * first request's path through slirp and the guest's server.
 *
 * What a snapshot contains, and so what must never be in one unless the
 * user agreed: ALL guest RAM. That is the kernel, page cache (recently read
 * or written file contents, including /workspace files and the overlay),
 * tmpfs (/tmp, /run, /dev/shm) and every process's memory: its environment
 * block, argv, heap and open connections' buffers. A secret given to a
 * process as `run` env is in its environment in RAM for as long as it runs,
 * and in every snapshot taken meanwhile; killing the process does not
 * scrub the freed pages either. Disks are not in the snapshot (they stay
 * where they are, and must be unchanged at restore). The snapshot file is
 * written 0600.
 */
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { dirname, join } from "node:path";
import type { GuestAssets } from "./assets/index.ts";
import { detectAccel, tscKhzFromCpuinfo, type AccelInfo } from "./accel.ts";
import type { Backend, BackendCapabilities, Vm, VmJournal, VmProcessRecord, VmSpec } from "./backend.ts";
import { adoptedProcess, processStartTime, sameProcess, spawnedProcess, type VmProcess } from "./vm-process.ts";
import { ChannelTimeoutError, ControlChannel } from "./control-channel.ts";
import { SnapshotStaleError } from "./errors.ts";
import { ensureOverlayDisk } from "./overlay-disk.ts";
import { lastLines } from "../control/file-ring.ts";
import { buildQemuArgs } from "./qemu-args.ts";
import { QmpClient } from "./qmp.ts";
import { QemuVm } from "./qemu-vm.ts";
import { readSnapshotMeta, removeSnapshot, snapshotMismatch, splitMemoryFile, stampFile, type SnapshotIdentity } from "./snapshot-file.ts";
import { BootWatchdog } from "./boot-watchdog.ts";
import { newTemplateBuild, pruneTemplateBuilds, templateBuilds, templateMemoryFile } from "./template-builds.ts";
import { TEMPLATE_HOSTNAME, templateKey } from "./templates.ts";
import { killGroup, startRootfsVirtiofsd, startVirtiofsd } from "./virtiofsd.ts";
import { VmNetwork } from "./network/index.ts";
import { PodNetwork } from "./network/pod.ts";
import { DEFAULT_NETWORK } from "../api/network-policy.ts";

/** Linux `sun_path` holds 108 bytes including the NUL. */
const SUN_PATH_MAX = 107;

/** Options of the QEMU backend. */
export interface QemuBackendOptions {
  /** The guest assets, or a (memoised) provider that builds them on first boot. */
  assets: GuestAssets | (() => Promise<GuestAssets>);
  /** Path of qemu-system-<arch>; found on PATH by default. */
  qemuBinary?: string;
  arch?: "x86_64" | "aarch64";
  accel?: AccelInfo;
  /** Boot watchdog budget (spawn to `ready`, counted in QEMU run time: boot-watchdog.ts); default 20 s under TCG, 10 s with KVM/HVF, or AEGIS_BOOT_TIMEOUT_MS. */
  bootTimeoutMs?: number;
  /**
   * TCG translation cache in MiB for every VM (or AEGIS_TCG_TB_MB); default
   * {@link TB_MB_COLD} for cold boots and {@link TB_MB_RESTORED} for
   * restores (template clones, snapshot wakes). It is private memory of
   * every VM, paused or not, so it bounds each idle instance's USS.
   */
  tbSizeMb?: number;
  /** Where template snapshots live (templates.ts); default `<guest assets dir>/templates`. */
  templatesDir?: string;
  /** AEGIS_HOME, named in the machine-wide network slot claims (network/netns.ts). */
  home?: string;
  /** Where the network layer logs (reduced mode, DNS problems). */
  log?: (msg: string, fields?: Record<string, unknown>) => void;
  /** Where every spawned VM process is recorded before the VM is used (live restore). */
  journal?: VmJournal;
}

/** Raised when a VM fails to boot; carries the console tail for the user. */
export class VmBootError extends Error {
  override name = "VmBootError";
  constructor(
    message: string,
    readonly consoleLog: string,
    readonly consoleTail: string,
  ) {
    super(consoleTail ? `${message}\n--- guest console (last lines) ---\n${consoleTail}` : message);
  }
}

/** Last `lines` lines of a file ("" when missing). */
export function fileTail(path: string, lines = 20): string {
  return lastLines(path, lines).join("\n");
}

function hostArch(): "x86_64" | "aarch64" {
  return process.arch === "arm64" ? "aarch64" : "x86_64";
}

function qemuEnv(): Record<string, string> {
  return { PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin", HOME: process.env.HOME ?? "/" };
}

/**
 * TCG translation cache (MiB) of a cold boot and of a restored VM. The cache
 * fills up as the guest runs and stays resident, paused or not, so it is
 * part of every idle instance's USS. Measured with bench/density.ts (N=4,
 * 512 MB guests from a template, 2 loaded cores, 2026-12-02): paused USS /
 * PSS / wake (paused -> first byte) / template start -> serving were
 * 32 MB: 83 / 102-106 MB / 134-266 ms / 2.7-5.1 s;
 * 16 MB: 64 / 86 MB / 184-343 ms / 2.8-9.5 s;
 *  8 MB: 56 / 80 MB / 565 ms / 6.2 s.
 * A cold `aegis run -- true` (AEGIS_TEMPLATES=0, 4 runs alternating) took
 * 7.5-12.6 s (median ~8.9) at 16 MB against 6.2-7.3 s (~6.7) at 32 MB: the
 * cold boot translates the whole harness start-up and a small cache makes it
 * translate parts twice. So cold boots (the template build among them) keep
 * 32 MB. Restores (template clones, wakes) would save 19 MB USS per idle
 * instance at 16 MB (the issue's 64 MB target) but the full suite then saw
 * served template clones miss 3 s request deadlines under load (the chaos
 * test failed 3 of 5 runs with it, passed before it; the likely cause, not
 * proven: a small cache retranslating a first request's code while other VMs
 * compete for the 2 cores), so restores keep 32 MB
 * too until a cache can be sized per phase. 8 MB saves 8 MB more but
 * doubles the wake again. 16 MB's price shows most in a template `aegis run --
 * true` (setup RPC and first exec run code the template never ran): 5
 * alternating pairs on a quiet machine, 1.75-2.14 s (median 1.99) at 16 MB
 * against 1.08-2.00 s (median 1.39) at 32 MB. 24 MB for restores was
 * measured after restores stopped carrying the kernel image (qemu-args.ts):
 * 12 pairs of template clones, two daemons side by side, each order once
 * (the second of a pair is slower whatever it runs, so both orders count),
 * load 6-12 on the 2 cores: paused USS 66-68 -> 57-58 MB, template start ->
 * serving slower in 9 of 12 pairs, wake no different (24 MB faster in 8 of
 * 14). The chaos test then failed with restart windows (kill -> first
 * request served) of 26.8 / 14.3 / 4.9 s against 6.7 / 1.7 / 1.5 s at 32 MB
 * in a pass shortly before; the machine was loaded enough that main failed
 * the test too, so this is a sign, not proof, and it agrees with 16 MB's.
 * Restores keep 32 MB. Under KVM there is no
 * translation cache at all; this trade-off is TCG's only.
 */
export const TB_MB_COLD = 32;
export const TB_MB_RESTORED = 32;

/** The QEMU implementation of `Backend`. */
export class QemuBackend implements Backend {
  readonly name = "qemu" as const;
  readonly capabilities: BackendCapabilities = { pauseResume: true, memorySnapshots: true, diskLayers: true, workspaceSnapshots: false };
  readonly accel: AccelInfo;
  readonly arch: "x86_64" | "aarch64";
  readonly qemuBinary: string;
  private readonly tscKhz?: number;
  /** Template snapshots being built or known good, by key (one build per key at a time). */
  private readonly templates = new Map<string, Promise<string>>();
  /** Template builds a clone is starting from in this process (by snapshot path, a count): never pruned. */
  private readonly templateLeases = new Map<string, number>();
  /**
   * Every QEMU (and virtiofsd) this backend spawned that still runs, by
   * QEMU pid, including template builds and boots not yet handed to a
   * caller: {@link killAll} must reach them all, or a daemon stopping
   * while it warms a template leaves that QEMU running, orphaned.
   */
  private readonly spawned = new Map<number, { proc: VmProcess; virtiofsd?: VmProcess }>();
  /** Where every spawned VM process is recorded (Backend.journal). */
  journal?: VmJournal;
  /** Set by killAll: no new VM process is spawned after it. */
  private closed = false;

  constructor(private readonly opts: QemuBackendOptions) {
    this.journal = opts.journal;
    this.arch = opts.arch ?? hostArch();
    const bin = opts.qemuBinary ?? Bun.which(`qemu-system-${this.arch}`);
    if (!bin) throw new Error(`qemu-system-${this.arch} not found on PATH\nhint: apt-get install qemu-system-x86`);
    this.qemuBinary = bin;
    this.accel = opts.accel ?? detectAccel();
    this.tscKhz = this.arch === "x86_64" && existsSync("/proc/cpuinfo") ? tscKhzFromCpuinfo(readFileSync("/proc/cpuinfo", "utf8")) : undefined;
  }

  /** Build (or find cached) the guest assets now, so the first boot does not pay for it. */
  async prepare(): Promise<GuestAssets> {
    return typeof this.opts.assets === "function" ? await this.opts.assets() : this.opts.assets;
  }

  private tbSizeMb(restoring: boolean): number {
    const env = process.env.AEGIS_TCG_TB_MB;
    if (env === undefined || env === "") return this.opts.tbSizeMb ?? (restoring ? TB_MB_RESTORED : TB_MB_COLD);
    const n = Number(env);
    if (!Number.isInteger(n) || n < 4 || n > 2048) throw new Error(`AEGIS_TCG_TB_MB ${JSON.stringify(env)} is not a whole number of MiB between 4 and 2048\nhint: unset it for the defaults (${TB_MB_COLD} for cold boots, ${TB_MB_RESTORED} for restores)`);
    return n;
  }

  private bootTimeoutMs(): number {
    const env = Number(process.env.AEGIS_BOOT_TIMEOUT_MS);
    if (Number.isFinite(env) && env > 0) return env;
    return this.opts.bootTimeoutMs ?? (this.accel.name === "tcg" ? 20_000 : 10_000);
  }

  /** The machine and disk identity a snapshot of `spec` records (and a restore must match). */
  snapshotIdentity(spec: VmSpec, assets: GuestAssets, sharedMemoryFile?: string): SnapshotIdentity {
    const rootfs = spec.rootfs || assets.baseRootfs;
    return {
      machine: {
        qemuBinary: this.qemuBinary,
        accel: this.accel.name,
        arch: this.arch,
        assetsHash: assets.hash,
        memoryMb: spec.memoryMb,
        vcpus: spec.vcpus,
        hostname: spec.hostname,
      },
      disks: {
        tools: stampFile(assets.toolsDisk),
        rootfs: stampFile(rootfs),
        ...(spec.overlayDisk && existsSync(spec.overlayDisk) ? { overlay: stampFile(spec.overlayDisk) } : {}),
      },
      ...(sharedMemoryFile && existsSync(sharedMemoryFile) ? { memory: stampFile(sharedMemoryFile) } : {}),
    };
  }

  /** Throw `SnapshotStaleError` unless `spec.restoreFrom` can be restored as `spec` right now. */
  private checkRestorable(spec: VmSpec & { restoreFrom: string }, assets: GuestAssets): void {
    const snap = spec.restoreFrom;
    if (spec.rootfsDir) throw new SnapshotStaleError(snap, "the VM boots a host directory through virtiofs, and such VMs are never snapshotted (QEMU 7.2 cannot migrate virtiofs)");
    if (spec.workspace) throw new SnapshotStaleError(snap, "the VM attaches a workspace, and VMs with a workspace are never snapshotted (QEMU 7.2 cannot migrate virtiofs)");
    const meta = readSnapshotMeta(snap);
    if (!meta) throw new SnapshotStaleError(snap, `it has no metadata ${snap}.json (incomplete, or not written by Aegis)`);
    if (spec.overlayDisk && !existsSync(spec.overlayDisk)) throw new SnapshotStaleError(snap, `its overlay disk ${spec.overlayDisk} is missing`);
    const bytes = existsSync(snap) ? statSync(snap).size : undefined;
    const why = snapshotMismatch(meta, this.snapshotIdentity(spec, assets, splitMemoryFile(snap)), bytes);
    if (why) throw new SnapshotStaleError(snap, why);
  }

  /** Boot (or restore) a VM; resolves once its harness answers. Retries once when the watchdog fires. */
  async boot(spec: VmSpec): Promise<QemuVm> {
    mkdirSync(spec.runDir, { recursive: true, mode: 0o700 });
    const assets = await this.prepare();
    if (spec.restoreFrom) this.checkRestorable(spec as VmSpec & { restoreFrom: string }, assets);
    else if (spec.overlayDisk) await ensureOverlayDisk(spec.overlayDisk, spec.overlayDiskSizeMb);
    const checkedAt = performance.now();
    // A split snapshot's RAM file is mapped copy-on-write, as a template's is (snapshot-split.ts).
    const ram = spec.restoreFrom ? splitMemoryFile(spec.restoreFrom) : undefined;
    const vm = await this.bootWithRetry(spec, assets, false, ram ? { path: ram, shared: false } : undefined);
    vm.bootMarks = { checked: checkedAt, ...vm.bootMarks };
    return vm;
  }

  /**
   * Start a VM by restoring the template for its shape (templates.ts),
   * building the template first when there is none; its first request,
   * `setup` (restore below), gives it its hostname, clock, RNG seed and what
   * of the rootfs overlay the template left (its overlay disk), then
   * `clock.set` corrects the clock. Workspace VMs and restores of their own
   * snapshot go through boot() instead.
   */
  async bootFromTemplate(spec: VmSpec): Promise<QemuVm> {
    // A pod network VM boots cold: a template's guest configured slirp's addresses before its snapshot.
    if (spec.workspace || spec.rootfsDir || spec.restoreFrom || spec.netnsPath) return await this.boot(spec);
    mkdirSync(spec.runDir, { recursive: true, mode: 0o700 });
    const assets = await this.prepare();
    if (spec.overlayDisk) await ensureOverlayDisk(spec.overlayDisk, spec.overlayDiskSizeMb);
    const snap = await this.ensureTemplate(spec, assets);
    // The template's RAM, mapped copy-on-write: this VM never writes the file (templates.ts). Leased until
    // its QEMU maps the file, so a rebuild finishing meanwhile does not remove it (template-builds.ts).
    this.templateLeases.set(snap, (this.templateLeases.get(snap) ?? 0) + 1);
    let vm: QemuVm;
    // The `setup` request is the clone's first (restore below): fresh clock and entropy for each attempt.
    const setup = (): SetupRequest => ({ hostname: spec.hostname, epoch_ms: Date.now(), entropy: randomBytes(64).toString("base64") });
    try {
      vm = await this.bootWithRetry({ ...spec, restoreFrom: snap }, assets, true, { path: templateMemoryFile(snap), shared: false }, setup);
    } finally {
      const n = (this.templateLeases.get(snap) ?? 1) - 1;
      if (n > 0) this.templateLeases.set(snap, n);
      else this.templateLeases.delete(snap);
    }
    vm.bootPhases.setupRpc = vm.bootPhases.setUp! - vm.bootPhases.resumed!;
    vm.bootMarks.setup = vm.bootMarks.setUp!;
    vm.fromTemplate = true;
    return vm;
  }

  /**
   * Build the template for a VM shape ahead of time (the daemon warms the
   * default task shape at start-up), so the first VM of that shape does not
   * pay for it. A no-op when it exists.
   */
  async warmTemplate(shape: { memoryMb: number; vcpus: number; rootfs?: string }): Promise<void> {
    const assets = await this.prepare();
    await this.ensureTemplate({ id: "warm", runDir: "", ports: [], hostname: TEMPLATE_HOSTNAME, ...shape }, assets);
  }

  /**
   * Path of the current template build for `spec`'s shape (template-builds.ts),
   * built now when there is none that verifies. Once a new build is written,
   * older ones no process maps any more are removed.
   */
  private async ensureTemplate(spec: VmSpec, assets: GuestAssets): Promise<string> {
    const rootfs = spec.rootfs || assets.baseRootfs;
    const overlayMb = spec.overlayDisk ? Math.round(statSync(spec.overlayDisk).size / 1024 / 1024) : 0;
    const key = templateKey({
      qemuBinary: this.qemuBinary, accel: this.accel.name, arch: this.arch, assetsHash: assets.hash,
      rootfs: stampFile(rootfs), memoryMb: spec.memoryMb, vcpus: spec.vcpus, overlayMb,
    });
    const dir = this.opts.templatesDir ?? join(dirname(assets.kernel), "templates");
    const pending = this.templates.get(key);
    if (pending) {
      const path = await pending.catch(() => undefined);
      // Still there and valid (someone may have cleaned the templates dir, or changed a file)?
      if (path && this.templateMismatch(path, { ...spec, rootfs }, assets) === undefined) return path;
      if (this.templates.get(key) === pending) this.templates.delete(key);
      if (!path) return await pending; // that build failed: its caller retries, and so do we, with its error
      return await this.ensureTemplate(spec, assets);
    }
    const build = (async () => {
      const current = templateBuilds(dir, key).find((snap) => this.templateMismatch(snap, { ...spec, rootfs }, assets) === undefined);
      if (current) return current;
      mkdirSync(dir, { recursive: true });
      const { snap, ram } = newTemplateBuild(dir, key);
      const staging = stagingMemoryFile(ram, key);
      const tspec: VmSpec = {
        id: `template-${key.slice(0, 8)}`,
        runDir: join(dir, `${key}.run`),
        memoryMb: spec.memoryMb,
        vcpus: spec.vcpus,
        rootfs,
        overlayDisk: overlayMb ? join(dir, `${key}.overlay.ext4`) : undefined,
        overlayDiskSizeMb: overlayMb || undefined,
        ports: [],
        hostname: TEMPLATE_HOSTNAME,
        // A template runs no user code, but gets no network either.
        network: { mode: "none", rules: [] },
      };
      mkdirSync(tspec.runDir, { recursive: true, mode: 0o700 });
      freshMemoryFile(staging);
      if (tspec.overlayDisk) await ensureOverlayDisk(tspec.overlayDisk, overlayMb);
      const vm = await this.bootWithRetry(tspec, assets, true, { path: staging, shared: true, publishTo: ram });
      try {
        // Warm the harness before the snapshot: clock.set loads its FFI module (libc.ts), which
        // every clone's setup needs; in the template it is paid once, not once per clone.
        await vm.channel.call("clock.set", { epoch_ms: Date.now() }, { timeoutMs: 30_000 });
        await vm.snapshot(snap);
      } catch (err) {
        removeSnapshot(snap);
        rmSync(ram, { force: true });
        throw err;
      } finally {
        vm.kill();
        await vm.exited;
        if (staging !== ram) rmSync(staging, { force: true });
        rmSync(tspec.runDir, { recursive: true, force: true });
        if (tspec.overlayDisk) rmSync(tspec.overlayDisk, { force: true });
      }
      // A build that does not verify right after it was written would be rebuilt forever: say why instead.
      const why = this.templateMismatch(snap, { ...spec, rootfs }, assets);
      if (why) throw new Error(`the template ${snap} just built does not verify: ${why}`);
      return snap;
    })();
    this.templates.set(key, build);
    build.catch(() => this.templates.delete(key)); // the caller sees the error; the next call retries
    const snap = await build;
    pruneTemplateBuilds(dir, key, snap, new Set(this.templateLeases.keys()));
    return snap;
  }

  /** Why the template `snap` cannot start `spec`, or undefined when it can. A clone's own overlay disk is fine by design. */
  private templateMismatch(snap: string, spec: VmSpec, assets: GuestAssets): string | undefined {
    const meta = readSnapshotMeta(snap);
    if (!meta) return "no template yet";
    const id = this.snapshotIdentity({ ...spec, hostname: TEMPLATE_HOSTNAME }, assets, templateMemoryFile(snap));
    if (meta.disks.overlay && id.disks.overlay) id.disks.overlay = meta.disks.overlay;
    return snapshotMismatch(meta, id, existsSync(snap) ? statSync(snap).size : undefined);
  }

  /**
   * Kill every VM process this backend spawned that still runs, except the
   * QEMU pids in `keep` (VMs left running on purpose for the next daemon),
   * and refuse to spawn more. Daemon shutdown calls it last, so template
   * builds and boots in flight do not outlive the daemon.
   */
  async killAll(keep: ReadonlySet<number> = new Set()): Promise<void> {
    this.closed = true;
    const victims = [...this.spawned.entries()].filter(([pid]) => !keep.has(pid)).map(([, v]) => v);
    for (const v of victims) {
      killGroup(v.proc.pid);
      if (v.virtiofsd) killGroup(v.virtiofsd.pid);
    }
    await Promise.all(victims.flatMap((v) => [v.proc.exited, ...(v.virtiofsd ? [v.virtiofsd.exited] : [])]));
  }

  /** See Backend.adopt. */
  async adopt(rec: VmProcessRecord, spec: VmSpec, beforeReplay: (vm: Vm) => void): Promise<QemuVm> {
    if (this.closed) throw new Error(`VM ${spec.id} not adopted: aegisd is shutting down`);
    if (rec.template) throw new Error(`VM ${spec.id} is a template build, which is never adopted`);
    if (!sameProcess(rec.pid, rec.startTime)) throw new Error(`VM ${spec.id}: its QEMU (pid ${rec.pid}) is no longer running`);
    const cmdline = readFileSync(`/proc/${rec.pid}/cmdline`, "utf8");
    if (!cmdline.includes(spec.runDir)) throw new Error(`VM ${spec.id}: pid ${rec.pid} is not its QEMU (its command line does not name ${spec.runDir})`);
    // The assets are needed only for a snapshot's identity: located in the background, awaited by a snapshot
    // (hashing them takes seconds under load; it used to be most of the restart window).
    const assetsReady = this.prepare();
    assetsReady.catch(() => undefined); // awaited by the identity below
    const paths = vmPaths(spec.runDir);
    // Where an adoption's time goes (aegisd's log): the restart window is made of these.
    const t0 = performance.now();
    const phases: Record<string, number> = {};
    const mark = (phase: string) => (phases[phase] = Math.round(performance.now() - t0));
    // The namespace and nft rules survived the old aegisd; its resolver and relays did not.
    const net = spec.netnsPath
      ? await PodNetwork.adopt(spec.netnsPath)
      : await VmNetwork.adopt(rec.netSlot, spec.network ?? DEFAULT_NETWORK, spec.runDir, this.home(spec), this.opts.log ?? (() => {}), { vmId: spec.id, hosts: spec.egressHosts ?? [] });
    let channel: ControlChannel | undefined;
    let qmp: QmpClient | undefined;
    try {
      mark("network");
      for (const p of spec.ports) await net.addForward(p.hostPort);
      channel = ControlChannel.listen(paths.ctl, undefined, { seqFile: paths.seq, adopt: true });
      const proc = adoptedProcess(rec.pid, rec.startTime);
      const vfsAlive = rec.virtiofsdPid !== undefined && rec.virtiofsdStartTime !== undefined && sameProcess(rec.virtiofsdPid, rec.virtiofsdStartTime);
      if (spec.workspace && !vfsAlive) throw new Error(`VM ${spec.id}: its virtiofsd (workspace ${spec.workspace}) is no longer running`);
      const virtiofsd = vfsAlive ? adoptedProcess(rec.virtiofsdPid!, rec.virtiofsdStartTime!) : undefined;
      qmp = await QmpClient.connect(paths.qmp, 5000);
      const status = await qmp.status();
      mark("qmp");
      const vm = new QemuVm(spec, proc, channel, paths, qmp, virtiofsd, 0, async () => this.snapshotIdentity(spec, await assetsReady), net);
      // QEMU's chardev tries our socket again every second (qemu-args.ts reconnect=1).
      await channel.waitConnected(5000);
      mark("control channel");
      beforeReplay(vm);
      if (status === "paused") vm.adoptedPaused();
      else await channel.resume(10_000);
      mark("resume");
      this.opts.log?.("VM adopted", { vm: spec.id, ms_after_start: phases });
      this.track(spec.id, proc, virtiofsd);
      return vm;
    } catch (err) {
      qmp?.close();
      channel?.close(`adoption failed: ${err instanceof Error ? err.message : String(err)}`);
      await net.close();
      throw err;
    }
  }

  /** AEGIS_HOME, as named in network slot claims. */
  private home(spec: VmSpec): string {
    return this.opts.home ?? dirname(dirname(spec.runDir));
  }

  /** Record a just-spawned VM process (pid + start time) before the VM is used. */
  private journalSpawn(spec: VmSpec, pid: number, virtiofsdPid: number | undefined, netSlot: number | undefined): void {
    const journal = this.journal;
    if (!journal) return;
    const startTime = processStartTime(pid);
    if (startTime === null) return; // already gone: boot reports why
    const vfsStart = virtiofsdPid === undefined ? null : processStartTime(virtiofsdPid);
    const { restoreFrom: _restored, ...kept } = spec;
    journal.spawned(
      { id: spec.id, pid, startTime, ...(virtiofsdPid !== undefined && vfsStart !== null ? { virtiofsdPid, virtiofsdStartTime: vfsStart } : {}), template: spec.id.startsWith("template-"), ...(netSlot !== undefined ? { netSlot } : {}) },
      kept,
    );
  }

  /** Track a VM process for killAll, and drop its journal record once it exits. */
  private track(id: string, proc: VmProcess, virtiofsd: VmProcess | undefined): void {
    const tracked = { proc, virtiofsd };
    this.spawned.set(proc.pid, tracked);
    void proc.exited.then(() => {
      if (this.spawned.get(proc.pid) === tracked) this.spawned.delete(proc.pid);
      this.journal?.gone(id, proc.pid);
    });
  }

  private async bootWithRetry(spec: VmSpec, assets: GuestAssets, defer: boolean, memoryFile?: MemoryFile, setup?: () => SetupRequest): Promise<QemuVm> {
    try {
      return await this.bootOnce(spec, assets, defer, 1, memoryFile, setup);
    } catch (err) {
      if (!(err instanceof VmBootError) || !err.message.includes("watchdog")) throw err;
      if (memoryFile?.shared) freshMemoryFile(memoryFile.path); // a fresh file for the fresh boot
      return await this.bootOnce(spec, assets, defer, 2, memoryFile, setup);
    }
  }

  private async bootOnce(spec: VmSpec, assets: GuestAssets, defer: boolean, attempt: number, memoryFile?: MemoryFile, setup?: () => SetupRequest): Promise<QemuVm> {
    const paths = vmPaths(spec.runDir);
    for (const p of [paths.ctl, paths.qmp, paths.vfs, paths.mig]) {
      if (Buffer.byteLength(p) > SUN_PATH_MAX) throw new Error(`socket path ${p} is longer than ${SUN_PATH_MAX} bytes\nhint: use a shorter AEGIS_HOME`);
    }
    if (this.closed) throw new Error(`VM ${spec.id} not started: aegisd is shutting down`);
    rmSync(paths.console, { force: true });
    rmSync(paths.qmp, { force: true });
    const channel = ControlChannel.listen(paths.ctl, undefined, { seqFile: paths.seq });
    let virtiofsd: Bun.Subprocess | undefined;
    let proc: Bun.Subprocess | undefined;
    let net: VmNetwork | PodNetwork | undefined;
    try {
      if (spec.netnsPath && spec.restoreFrom) throw new Error(`VM ${spec.id}: a VM on a pod network (netns_path) cannot be restored from a snapshot`);
      net = spec.netnsPath
        ? await PodNetwork.setup(spec.netnsPath)
        : await VmNetwork.setup(spec.network ?? DEFAULT_NETWORK, spec.runDir, this.home(spec), this.opts.log ?? (() => {}), { vmId: spec.id, hosts: spec.egressHosts ?? [] });
      for (const p of spec.ports) await net.addForward(p.hostPort);
      const networkAt = performance.now();
      if (spec.workspace && spec.rootfsDir) throw new Error(`VM ${spec.id}: a host-directory rootfs and a workspace cannot be combined yet`);
      if (spec.workspace) virtiofsd = await startVirtiofsd(spec.workspace, paths.vfs, join(spec.runDir, "virtiofsd.log"), qemuEnv());
      if (spec.rootfsDir) virtiofsd = await startRootfsVirtiofsd(spec.rootfsDir, paths.vfs, join(spec.runDir, "virtiofsd.log"), qemuEnv());
      const args = buildQemuArgs({
        arch: this.arch,
        accel: this.accel.name,
        tscKhz: this.tscKhz,
        memoryMb: spec.memoryMb,
        vcpus: spec.vcpus,
        kernel: assets.kernel,
        initrd: assets.initrd,
        toolsDisk: assets.toolsDisk,
        rootfs: spec.rootfs || assets.baseRootfs,
        overlayDisk: spec.overlayDisk,
        ports: spec.ports,
        hostfwdAddress: net.hostfwdAddress,
        restrict: net.mode !== "pod" && net.restrict,
        hostname: spec.hostname,
        virtiofsSocket: virtiofsd ? paths.vfs : undefined,
        virtiofsTag: spec.rootfsDir ? "aegis-root" : "workspace",
        serialLog: paths.console,
        controlSocket: paths.ctl,
        qmpSocket: paths.qmp,
        // A template's stream needs x-ignore-shared set before it loads: deferred, then started over QMP.
        incoming: spec.restoreFrom ? (memoryFile ? "defer" : restoreUri(spec.restoreFrom)) : undefined,
        deferSetup: defer,
        memoryFile,
        tbSizeMb: this.tbSizeMb(spec.restoreFrom !== undefined),
        podNet: net.mode === "pod" ? { tap: net.tap, mac: net.mac, word: net.guestWord! } : undefined,
      });
      const t0 = performance.now();
      // An uncompressed snapshot reaches QEMU as fd 3 (restoreUri); `ip netns exec` passes it on.
      const incomingFd = spec.restoreFrom ? openIncoming(spec.restoreFrom) : undefined;
      try {
        proc = Bun.spawn([...net.wrapper, this.qemuBinary, ...args], {
          stdio: ["ignore", "ignore", Bun.file(paths.qemuLog), ...(incomingFd !== undefined ? [incomingFd] : [])],
          env: qemuEnv(),
          detached: true,
        });
      } finally {
        if (incomingFd !== undefined) closeSync(incomingFd);
      }
      const p = proc;
      const vmProc = spawnedProcess(p);
      const vfsProc = virtiofsd ? spawnedProcess(virtiofsd) : undefined;
      net.recordVm(p.pid);
      this.journalSpawn(spec, p.pid, virtiofsd?.pid, net.slot);
      this.track(spec.id, vmProc, vfsProc);
      const exitedEarly = p.exited.then((code) => {
        const log = fileTail(paths.qemuLog, 10);
        throw new VmBootError(`VM ${spec.id}: QEMU exited with code ${code} during boot${log ? `: ${log}` : ""}`, paths.console, fileTail(paths.console));
      });
      const timeoutMs = this.bootTimeoutMs();
      const watchdog = new BootWatchdog(p.pid, timeoutMs);
      let qmp: QmpClient | undefined;
      const phases: Record<string, number> = {};
      const marks: Record<string, number> = { network: networkAt, spawned: t0 };
      const mark = (name: string) => {
        marks[name] = performance.now();
        phases[name] = marks[name] - t0;
      };
      try {
        if (spec.restoreFrom) {
          qmp = await Promise.race([restore(paths.qmp, channel, watchdog, mark, { deferredUri: memoryFile ? restoreUri(spec.restoreFrom) : undefined, setup }), exitedEarly]);
        } else {
          await Promise.race([watchdog.guard(channel.waitReady(watchdog.capMs), "harness ready"), exitedEarly]);
        }
      } catch (err) {
        if (err instanceof ChannelTimeoutError) {
          throw new VmBootError(
            `VM ${spec.id}: boot watchdog fired: no harness ${spec.restoreFrom ? "answer after restore" : "ready"} after ${watchdog.elapsedMs()} ms (budget ${timeoutMs} ms of QEMU run time; ${err.message}) (attempt ${attempt} of 2)`,
            paths.console,
            fileTail(paths.console),
          );
        }
        throw err;
      }
      exitedEarly.catch(() => undefined); // after boot, the exit is reported through Vm.exited instead
      const bootMs = performance.now() - t0;
      const vm = new QemuVm(spec, vmProc, channel, paths, qmp, vfsProc, bootMs, () => this.snapshotIdentity(spec, assets, memoryFile?.shared ? (memoryFile.publishTo ?? memoryFile.path) : undefined), net);
      vm.bootPhases = phases;
      vm.bootMarks = marks;
      if (memoryFile?.shared) vm.sharedRam = { path: memoryFile.path, publishTo: memoryFile.publishTo };
      return vm;
    } catch (err) {
      if (proc) {
        killGroup(proc.pid);
        await proc.exited;
      }
      if (virtiofsd) {
        killGroup(virtiofsd.pid);
        await virtiofsd.exited;
      }
      channel.close("boot failed");
      await net?.close();
      throw err;
    }
  }
}

/** Socket, log and state paths of the VM whose run directory is `runDir`. */
export function vmPaths(runDir: string) {
  return {
    ctl: join(runDir, "ctl.sock"),
    /** The last control-channel seq the host handled (control-channel.ts). */
    seq: join(runDir, "ctl.seq"),
    qmp: join(runDir, "qmp.sock"),
    vfs: join(runDir, "vfs", "vfs.sock"),
    mig: join(runDir, "mig.sock"),
    console: join(runDir, "console.log"),
    qemuLog: join(runDir, "qemu.log"),
  };
}

/** The file descriptor number a restored QEMU reads an uncompressed snapshot from (see {@link restoreUri}). */
export const INCOMING_FD = 3;

/**
 * `-incoming` URI for a snapshot file: a zstd one (`.zst`) streams through
 * `zstd -dc`; any other is opened by aegisd and given to QEMU as fd
 * {@link INCOMING_FD}, which QEMU 7.2 reads as a file channel (no `cat`
 * process and pipe in between: see the wake numbers in the module notes).
 */
export function restoreUri(path: string): string {
  const q = `'${path.replaceAll("'", `'\\''`)}'`;
  return path.endsWith(".zst") ? `exec:zstd -dc ${q}` : `fd:${INCOMING_FD}`;
}

/** The snapshot opened for QEMU when {@link restoreUri} names an fd (the caller closes it once QEMU is spawned). */
function openIncoming(path: string): number | undefined {
  return restoreUri(path).startsWith("fd:") ? openSync(path, "r") : undefined;
}

/**
 * Replace `path` by a new empty 0600 file (guest RAM: its owner only) that
 * QEMU sizes. Unlinked, never rewritten in place: running clones of an older
 * template still map the old inode's pages.
 */
function freshMemoryFile(path: string): void {
  rmSync(path, { force: true });
  writeFileSync(path, "", { mode: 0o600 });
}

/**
 * Where a template VM keeps its RAM while it boots: tmpfs (/dev/shm) when
 * there is one, copied sparse to `ram` once the snapshot is taken
 * (snapshot-file.ts publishMemoryFile). Booting straight on a disk file was
 * measured slower and unsteady: every first write to a hole allocates file
 * blocks, and the host's dirty-page writeback throttles the vCPU thread
 * (template boots past the 20 s watchdog on a loaded host).
 */
function stagingMemoryFile(ram: string, key: string): string {
  if (!existsSync("/dev/shm") || !statSync("/dev/shm").isDirectory()) return ram;
  // A daemon killed mid-build leaves its staging file in RAM: drop those whose process is gone.
  for (const f of readdirSync("/dev/shm")) {
    const m = f.match(/^aegis-template-[0-9a-f]+-(\d+)\.ram$/);
    if (m && processStartTime(Number(m[1])) === null) rmSync(join("/dev/shm", f), { force: true });
  }
  return join("/dev/shm", `aegis-template-${key}-${process.pid}.ram`);
}

/** A memory file backing guest RAM (qemu-args.ts `memoryFile`); `publishTo`: where the snapshot copies it. */
type MemoryFile = { path: string; shared: boolean; publishTo?: string };

/** The `setup` request of a template clone (api/schema/control.ts SetupParams). */
type SetupRequest = { hostname: string; epoch_ms: number; entropy: string };

/**
 * Restore after spawn; `mark` records each phase's end (ms since spawn,
 * QemuVm.bootPhases). A template clone (`setup`) gets its `setup` request
 * as the first one, with no ping before it: its answer shows as well that
 * the harness runs, and the ping's round trip (~150 ms after a restore under
 * TCG, through code the setup runs next anyway) was pure wait. Either way
 * the boot watchdog bounds the first answer, so a clone that hangs there is
 * retried like a boot.
 */
async function restore(
  qmpPath: string,
  channel: ControlChannel,
  watchdog: BootWatchdog,
  mark: (phase: string) => void,
  opts: { deferredUri?: string; setup?: () => SetupRequest },
): Promise<QmpClient> {
  const { deferredUri, setup } = opts;
  const qmp = await watchdog.guard(QmpClient.connect(qmpPath, watchdog.capMs), "QMP connect");
  mark("qmpConnected");
  if (deferredUri) {
    // A template or split snapshot: its RAM is the memory file this VM maps, not in the stream.
    await qmp.setMigrationCapability("x-ignore-shared", true);
    await qmp.migrateIncoming(deferredUri);
  }
  for (;;) {
    const st = await qmp.status();
    if (st !== "inmigrate") break;
    if (watchdog.expired()) throw new ChannelTimeoutError(`snapshot load not finished after ${watchdog.elapsedMs()} ms`);
    await Bun.sleep(2);
  }
  mark("migrationLoaded");
  await qmp.cont();
  mark("resumed");
  if (setup) {
    await watchdog.guard(channel.call("setup", setup(), { timeoutMs: watchdog.capMs }), "the guest's setup request after the restore");
    mark("setUp");
    // The clock `setup` set lags by the time its request waited for the resuming guest (0.2-2 s under TCG
    // on a loaded host); set it again now that the harness answers at once.
    await watchdog.guard(channel.call("clock.set", { epoch_ms: Date.now() }, { timeoutMs: watchdog.capMs }), "clock.set after the setup");
    mark("clockSet");
    return qmp;
  }
  // The guest clock stood still since the snapshot; the clock is the first answer (a separate ping
  // first cost a guest round trip, ~17 ms under TCG).
  await watchdog.guard(channel.call("clock.set", { epoch_ms: Date.now() }, { timeoutMs: watchdog.capMs }), "clock.set after the restore");
  mark("clockSet");
  return qmp;
}

export { QemuVm };

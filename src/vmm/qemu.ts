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
 * (for `aegis logs` and for crash messages).
 *
 * Restore (`spec.restoreFrom`): the same command line plus `-incoming
 * exec:...`; the snapshot was taken paused, so we wait for QMP `query-status`
 * to leave `inmigrate`, `cont`, check the harness with `ping` (its port
 * reconnects to our new listener by itself) and set its clock.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import type { GuestAssets } from "../../guest/assets/index.ts";
import { detectAccel, tscKhzFromCpuinfo, type AccelInfo } from "./accel.ts";
import type { Backend, BackendCapabilities, Vm, VmSpec } from "./backend.ts";
import { ChannelClosedError, ChannelTimeoutError, ControlChannel } from "./control-channel.ts";
import { buildQemuArgs } from "./qemu-args.ts";
import { QmpClient } from "./qmp.ts";

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
  /** Boot watchdog (spawn to `ready`); default 20 s under TCG, 10 s with KVM/HVF, or AEGIS_BOOT_TIMEOUT_MS. */
  bootTimeoutMs?: number;
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
  if (!existsSync(path)) return "";
  const text = readFileSync(path, "utf8");
  return text.split("\n").filter((l) => l.trim()).slice(-lines).join("\n");
}

function hostArch(): "x86_64" | "aarch64" {
  return process.arch === "arm64" ? "aarch64" : "x86_64";
}

function qemuEnv(): Record<string, string> {
  return { PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin", HOME: process.env.HOME ?? "/" };
}

function virtiofsdPath(): string {
  const found = ["/usr/lib/qemu/virtiofsd", "/usr/libexec/virtiofsd"].find((p) => existsSync(p)) ?? Bun.which("virtiofsd");
  if (!found) throw new Error("virtiofsd not found\nhint: apt-get install qemu-system-common (it ships /usr/lib/qemu/virtiofsd)");
  return found;
}

/** Kill a process group, ignoring only "already gone". */
function killGroup(pid: number, signal: NodeJS.Signals = "SIGKILL"): void {
  try {
    process.kill(-pid, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
  }
}

/** The QEMU implementation of `Backend`. */
export class QemuBackend implements Backend {
  readonly name = "qemu" as const;
  readonly capabilities: BackendCapabilities = { pauseResume: true, memorySnapshots: true, diskLayers: false };
  readonly accel: AccelInfo;
  readonly arch: "x86_64" | "aarch64";
  readonly qemuBinary: string;
  private readonly tscKhz?: number;

  constructor(private readonly opts: QemuBackendOptions) {
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

  private bootTimeoutMs(): number {
    const env = Number(process.env.AEGIS_BOOT_TIMEOUT_MS);
    if (Number.isFinite(env) && env > 0) return env;
    return this.opts.bootTimeoutMs ?? (this.accel.name === "tcg" ? 20_000 : 10_000);
  }

  /** Boot (or restore) a VM; resolves once its harness answers. Retries once when the watchdog fires. */
  async boot(spec: VmSpec): Promise<Vm> {
    mkdirSync(spec.runDir, { recursive: true, mode: 0o700 });
    try {
      return await this.bootOnce(spec, 1);
    } catch (err) {
      if (!(err instanceof VmBootError) || !err.message.includes("watchdog")) throw err;
      return await this.bootOnce(spec, 2);
    }
  }

  private async bootOnce(spec: VmSpec, attempt: number): Promise<QemuVm> {
    const assets = await this.prepare();
    const paths = {
      ctl: join(spec.runDir, "ctl.sock"),
      qmp: join(spec.runDir, "qmp.sock"),
      vfs: join(spec.runDir, "vfs.sock"),
      console: join(spec.runDir, "console.log"),
      qemuLog: join(spec.runDir, "qemu.log"),
    };
    for (const p of [paths.ctl, paths.qmp, paths.vfs]) {
      if (Buffer.byteLength(p) > SUN_PATH_MAX) throw new Error(`socket path ${p} is longer than ${SUN_PATH_MAX} bytes\nhint: use a shorter AEGIS_HOME`);
    }
    rmSync(paths.console, { force: true });
    rmSync(paths.qmp, { force: true });
    const channel = ControlChannel.listen(paths.ctl);
    let virtiofsd: Bun.Subprocess | undefined;
    let proc: Bun.Subprocess | undefined;
    try {
      if (spec.workspace) virtiofsd = await startVirtiofsd(spec.workspace, paths.vfs, join(spec.runDir, "virtiofsd.log"));
      const incoming = spec.restoreFrom ? restoreUri(spec.restoreFrom) : undefined;
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
        hostname: spec.hostname,
        virtiofsSocket: virtiofsd ? paths.vfs : undefined,
        serialLog: paths.console,
        controlSocket: paths.ctl,
        qmpSocket: paths.qmp,
        incoming,
      });
      const t0 = performance.now();
      proc = Bun.spawn([this.qemuBinary, ...args], {
        stdin: "ignore",
        stdout: "ignore",
        stderr: Bun.file(paths.qemuLog),
        env: qemuEnv(),
        detached: true,
      });
      const p = proc;
      const exitedEarly = p.exited.then((code) => {
        const log = fileTail(paths.qemuLog, 10);
        throw new VmBootError(`VM ${spec.id}: QEMU exited with code ${code} during boot${log ? `: ${log}` : ""}`, paths.console, fileTail(paths.console));
      });
      const timeoutMs = this.bootTimeoutMs();
      let qmp: QmpClient | undefined;
      try {
        if (spec.restoreFrom) {
          qmp = await Promise.race([restore(paths.qmp, channel, timeoutMs), exitedEarly]);
        } else {
          await Promise.race([channel.waitReady(timeoutMs), exitedEarly]);
        }
      } catch (err) {
        if (err instanceof ChannelTimeoutError) {
          throw new VmBootError(
            `VM ${spec.id}: boot watchdog fired: no harness ready within ${timeoutMs} ms (attempt ${attempt} of 2)`,
            paths.console,
            fileTail(paths.console),
          );
        }
        throw err;
      }
      exitedEarly.catch(() => undefined); // after boot, the exit is reported through Vm.exited instead
      const bootMs = performance.now() - t0;
      return new QemuVm(spec, p, channel, paths.console, paths.qmp, qmp, virtiofsd, bootMs);
    } catch (err) {
      if (proc) {
        killGroup(proc.pid);
        await proc.exited;
      }
      if (virtiofsd) {
        virtiofsd.kill("SIGKILL");
        await virtiofsd.exited;
      }
      channel.close("boot failed");
      throw err;
    }
  }
}

/** `-incoming` URI for a snapshot file (zstd-compressed when it ends in .zst). */
export function restoreUri(path: string): string {
  const q = `'${path.replaceAll("'", `'\\''`)}'`;
  return path.endsWith(".zst") ? `exec:zstd -dc ${q}` : `exec:cat ${q}`;
}

/** `migrate` URI writing a snapshot file (zstd -1 when it ends in .zst). */
export function snapshotUri(path: string): string {
  const q = `'${path.replaceAll("'", `'\\''`)}'`;
  return path.endsWith(".zst") ? `exec:zstd -1 -q -T2 > ${q}` : `exec:cat > ${q}`;
}

async function restore(qmpPath: string, channel: ControlChannel, timeoutMs: number): Promise<QmpClient> {
  const deadline = Date.now() + timeoutMs;
  const qmp = await QmpClient.connect(qmpPath, timeoutMs);
  for (;;) {
    const st = await qmp.status();
    if (st !== "inmigrate") break;
    if (Date.now() > deadline) throw new ChannelTimeoutError(`snapshot load did not finish within ${timeoutMs} ms`);
    await Bun.sleep(10);
  }
  await qmp.cont();
  await channel.call("ping", undefined, { timeoutMs: Math.max(1000, deadline - Date.now()) });
  await channel.call("clock.set", { epoch_ms: Date.now() }, { timeoutMs: 5000 });
  return qmp;
}

async function startVirtiofsd(source: string, socket: string, logPath: string): Promise<Bun.Subprocess> {
  if (!existsSync(source) || !statSync(source).isDirectory()) throw new Error(`workspace ${source} is not a directory`);
  rmSync(socket, { force: true });
  const proc = Bun.spawn([virtiofsdPath(), `--socket-path=${socket}`, "-o", `source=${source}`, "-o", "cache=auto", "--thread-pool-size=2"], {
    stdin: "ignore",
    stdout: "ignore",
    stderr: Bun.file(logPath),
    env: qemuEnv(),
  });
  const deadline = Date.now() + 5000;
  while (!existsSync(socket)) {
    if (proc.exitCode !== null || Date.now() > deadline) {
      proc.kill("SIGKILL");
      throw new Error(`virtiofsd did not create ${socket}: ${fileTail(logPath, 5)}`);
    }
    await Bun.sleep(5);
  }
  return proc;
}

/** A VM run by QEMU. */
export class QemuVm implements Vm {
  readonly id: string;
  readonly pid: number;
  readonly exited: Promise<number>;
  private qmp?: QmpClient;

  constructor(
    spec: VmSpec,
    private readonly proc: Bun.Subprocess,
    readonly channel: ControlChannel,
    readonly consoleLog: string,
    private readonly qmpPath: string,
    qmp: QmpClient | undefined,
    private readonly virtiofsd: Bun.Subprocess | undefined,
    /** Spawn-to-ready time of this boot, in ms. */
    readonly bootMs: number,
  ) {
    this.id = spec.id;
    this.pid = proc.pid;
    this.qmp = qmp;
    this.exited = proc.exited.then(async (code) => {
      channel.close(`VM ${spec.id} exited (code ${code})`);
      this.qmp?.close();
      if (this.virtiofsd) {
        this.virtiofsd.kill("SIGTERM");
        await this.virtiofsd.exited;
      }
      return code;
    });
  }

  private async qmpClient(): Promise<QmpClient> {
    this.qmp ??= await QmpClient.connect(this.qmpPath);
    return this.qmp;
  }

  /** Pause the vCPUs (QMP `stop`). */
  async pause(): Promise<void> {
    await (await this.qmpClient()).stop();
  }

  /** Resume (QMP `cont`) and resync the guest clock, which stood still while paused. */
  async resume(): Promise<void> {
    await (await this.qmpClient()).cont();
    await this.channel.call("clock.set", { epoch_ms: Date.now() }, { timeoutMs: 5000 });
  }

  /** Write a memory snapshot to `path` (zstd when it ends in .zst); leaves the VM paused. */
  async snapshot(path: string): Promise<void> {
    const qmp = await this.qmpClient();
    await qmp.stop();
    await qmp.migrate(snapshotUri(path));
    for (;;) {
      const st = await qmp.queryMigrate();
      if (st.status === "completed") return;
      if (st.status === "failed" || st.status === "cancelled") throw new Error(`snapshot of VM ${this.id} to ${path} ${st.status}: ${st["error-desc"] ?? "no detail"}`);
      await Bun.sleep(20);
    }
  }

  /** Ask the harness to power off; SIGKILL the process group after `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const timer = setTimeout(() => this.kill(), graceMs);
    try {
      await this.channel.call("shutdown", undefined, { timeoutMs: graceMs }).catch((err: unknown) => {
        // A wedged or already-gone guest is expected here; the timer's SIGKILL covers it.
        if (!(err instanceof ChannelTimeoutError) && !(err instanceof ChannelClosedError)) throw err;
      });
      await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** SIGKILL the QEMU process group. */
  kill(): void {
    killGroup(this.pid);
  }
}

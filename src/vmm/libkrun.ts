/**
 * @module vmm/libkrun
 * The libkrun backend (DESIGN.md section 5): one `aegis-vmm-worker` process
 * per VM, because `krun_start_enter` takes its process over and `exit()`s
 * it when the VM ends (STYLE rule 4). Boot sequence:
 *   1. listen on `<runDir>/ctl.sock` (libkrun connects it to the guest's
 *      vsock port `CONTROL_VSOCK_PORT`; the harness connects to that port),
 *   2. spawn the worker (`aegis __vmm --run-dir <runDir>`, or `bun
 *      src/main.ts __vmm` from source) detached in its own process group,
 *      with an explicit minimal environment, stdout to the console log,
 *      stderr to `<runDir>/worker.log`,
 *   3. write its configuration (libkrun-config.ts) as one JSON document to
 *      its stdin and close it: nothing about the VM goes through argv or env
 *      (`--run-dir` only lets the daemon recognise a stale worker),
 *   4. wait for the harness's `ready`, or fail with the worker's log when it
 *      exits first or the boot watchdog fires.
 *
 * Capabilities: no pause/resume, no memory snapshots (libkrun has neither;
 * `LibkrunVm` throws `LibkrunUnsupportedError`), disk layers yes (the
 * read-only image plus the per-instance overlay disk, as with QEMU).
 *
 * What was verified: our side of the C ABI, by test/integration/libkrun-abi.test.ts
 * against a stub library with the real signatures, including this boot path
 * end to end (the stub plays the guest on the vsock socket). libkrun itself
 * has never run on our CI machines (it cannot be installed there).
 */
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { selfCommand } from "../paths.ts";
import type { Backend, BackendCapabilities, VmSpec } from "./backend.ts";
import { ChannelTimeoutError, ControlChannel } from "./control-channel.ts";
import { SnapshotStaleError } from "./errors.ts";
import { workerConfig, type KrunVmPaths } from "./libkrun-config.ts";
import { LibkrunVm } from "./libkrun-vm.ts";
import { ensureOverlayDisk } from "./overlay-disk.ts";
import { fileTail, VmBootError } from "./qemu.ts";
import { killGroup } from "./virtiofsd.ts";

/** Linux `sun_path` holds 108 bytes including the NUL (macOS: 104). */
const SUN_PATH_MAX = process.platform === "darwin" ? 103 : 107;

/** What the guest boots from under libkrun. */
export interface KrunGuest {
  /** Host directory shared as the guest's `/` (libkrun-root.ts). */
  rootDir: string;
  /** Read-only ext4 image used when the spec names no rootfs. */
  baseRootfs: string;
}

/** Options of the libkrun backend. */
export interface LibkrunBackendOptions {
  /** The library the worker dlopens (already probed by select.ts). */
  library: string;
  /** The guest root and base image, or a (memoised) provider of them. */
  guest: KrunGuest | (() => Promise<KrunGuest>);
  /** Command that runs the worker role; default `selfCommand("__vmm")`. */
  workerCommand?: string[];
  /** Spawn-to-`ready` watchdog; default 10 s or AEGIS_BOOT_TIMEOUT_MS. */
  bootTimeoutMs?: number;
  /** libkrun log level 0..5 (default 1, errors). */
  logLevel?: number;
}

/** The environment a worker gets: enough to run, nothing of the daemon's (no BUN_OPTIONS, no secrets). */
function workerEnv(): Record<string, string> {
  return { PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin", HOME: process.env.HOME ?? "/" };
}

/** The libkrun implementation of `Backend`. */
export class LibkrunBackend implements Backend {
  readonly name = "libkrun" as const;
  readonly capabilities: BackendCapabilities = { pauseResume: false, memorySnapshots: false, diskLayers: true, workspaceSnapshots: false };

  constructor(private readonly opts: LibkrunBackendOptions) {}

  /** The guest root and base image (built on first use). */
  async prepare(): Promise<KrunGuest> {
    return typeof this.opts.guest === "function" ? await this.opts.guest() : this.opts.guest;
  }

  private bootTimeoutMs(): number {
    const env = Number(process.env.AEGIS_BOOT_TIMEOUT_MS);
    if (Number.isFinite(env) && env > 0) return env;
    return this.opts.bootTimeoutMs ?? 10_000;
  }

  /** Boot a VM in a new worker; resolves once its harness is `ready`. */
  async boot(spec: VmSpec): Promise<LibkrunVm> {
    if (spec.restoreFrom) throw new SnapshotStaleError(spec.restoreFrom, "the libkrun backend cannot restore memory snapshots");
    if (spec.netnsPath) throw new Error(`VM ${spec.id}: a pod network (netns_path ${spec.netnsPath}) needs the QEMU backend (a tap device in the namespace); libkrun has none\nhint: run aegisd with the QEMU backend`);
    mkdirSync(spec.runDir, { recursive: true, mode: 0o700 });
    const guest = await this.prepare();
    if (spec.overlayDisk) await ensureOverlayDisk(spec.overlayDisk, spec.overlayDiskSizeMb);
    const paths: KrunVmPaths = {
      ctl: join(spec.runDir, "ctl.sock"),
      console: join(spec.runDir, "console.log"),
      workerLog: join(spec.runDir, "worker.log"),
    };
    if (Buffer.byteLength(paths.ctl) > SUN_PATH_MAX) throw new Error(`socket path ${paths.ctl} is longer than ${SUN_PATH_MAX} bytes\nhint: use a shorter AEGIS_HOME`);
    rmSync(paths.console, { force: true });
    const cfg = workerConfig(spec, { library: this.opts.library, rootDir: guest.rootDir, baseRootfs: guest.baseRootfs, paths, logLevel: this.opts.logLevel });
    const channel = ControlChannel.listen(paths.ctl);
    const spawnWorker = () =>
      Bun.spawn([...(this.opts.workerCommand ?? selfCommand("__vmm")), "--run-dir", spec.runDir], {
        stdin: "pipe",
        stdout: Bun.file(paths.console),
        stderr: Bun.file(paths.workerLog),
        env: workerEnv(),
        detached: true,
      });
    let proc: ReturnType<typeof spawnWorker> | undefined;
    try {
      const t0 = performance.now();
      proc = spawnWorker();
      const p = proc;
      const exitedEarly = p.exited.then((code) => {
        const log = fileTail(paths.workerLog, 10);
        throw new VmBootError(`VM ${spec.id}: the libkrun worker exited with code ${code} during boot${log ? `: ${log}` : ""}`, paths.console, fileTail(paths.console));
      });
      // Observed by the race below; this handler only keeps an exit after boot (or after a failed write) from being "unhandled".
      exitedEarly.catch(() => undefined);
      p.stdin.write(JSON.stringify(cfg));
      await p.stdin.end();
      const timeoutMs = this.bootTimeoutMs();
      try {
        await Promise.race([channel.waitReady(timeoutMs), exitedEarly]);
      } catch (err) {
        if (err instanceof ChannelTimeoutError) {
          throw new VmBootError(`VM ${spec.id}: boot watchdog fired: no harness ready within ${timeoutMs} ms`, paths.console, fileTail(paths.console));
        }
        throw err;
      }
      return new LibkrunVm(spec, p, channel, paths.console, performance.now() - t0);
    } catch (err) {
      if (proc) {
        killGroup(proc.pid);
        await proc.exited;
      }
      channel.close("boot failed");
      throw err;
    }
  }
}

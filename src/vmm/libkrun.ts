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
 *      (`--run-dir` only lets a daemon recognise the worker: stale, or to adopt),
 *   4. wait for the harness's `ready`, or fail with the worker's log when it
 *      exits first or the boot watchdog fires.
 *
 * Live restore: the worker runs in its own session and process group
 * (`detached`: setsid), its stdin pipe is closed once the configuration is
 * written and its stdout/stderr are files, so nothing ties it to aegisd: it
 * outlives a daemon that dies or is upgraded. Its pid and /proc start time
 * go to the journal (`Backend.journal`, the registry's `vms` rows) right
 * after the spawn and before the configuration is written, i.e. before the
 * VM exists, let alone is used; the control socket is `<runDir>/ctl.sock`
 * and the last handled seq `<runDir>/ctl.seq`, both named by the recorded
 * spec's run directory. {@link LibkrunBackend.adopt} takes such a worker
 * over: pid + start time (vm-process.ts), its command line naming the run
 * directory (`--run-dir`), then a new listener on the same socket, which
 * the guest's harness reconnects to (guest/harness/port.ts: under vsock it
 * reconnects when the host end goes away, and libkrun, as we read it,
 * connects each new guest stream to the Unix socket), a `ping` answered as
 * the handshake,
 * and the `resume` replay of what the guest held meanwhile. A failed check
 * throws; the daemon then kills what it recorded (if it is still the
 * recorded process) and says so in its log. Host ports need nothing: TSI's
 * listeners live in the worker process itself.
 *
 * Capabilities: no pause/resume, no memory snapshots (libkrun has neither;
 * `LibkrunVm` throws `LibkrunUnsupportedError`), disk layers yes (the
 * read-only image plus the per-instance overlay disk, as with QEMU).
 *
 * What was verified: our side of the C ABI, by test/integration/libkrun-abi.test.ts
 * against an ABI-level stand-in (a stub library with the real signatures),
 * including this boot path end to end (the stub plays the guest on the
 * vsock socket), and adoption by test/integration/libkrun-adopt.test.ts
 * against the same stand-in (its guest reconnects and replays like the
 * harness). libkrun itself has never run on our CI machines (it cannot be
 * installed there): that libkrun's vsock proxy connects a second guest
 * stream to the Unix socket after the first one closed is our reading of it
 * (one host connection per guest stream), not something we have seen.
 */
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { selfCommand } from "../paths.ts";
import type { Backend, BackendCapabilities, Vm, VmJournal, VmProcessRecord, VmSpec } from "./backend.ts";
import { adoptedProcess, processStartTime, sameProcess, spawnedProcess, type VmProcess } from "./vm-process.ts";
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
  /** How long `adopt` waits for the guest to reconnect and answer (default 10 s). */
  adoptTimeoutMs?: number;
  /** Where every spawned worker is recorded before its VM is used (live restore). */
  journal?: VmJournal;
  /** Where adoptions are logged (aegisd's log). */
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

/** Socket, log and state paths of the libkrun VM whose run directory is `runDir`. */
export function krunPaths(runDir: string): KrunVmPaths & { seq: string } {
  return {
    ctl: join(runDir, "ctl.sock"),
    console: join(runDir, "console.log"),
    workerLog: join(runDir, "worker.log"),
    /** The last control-channel seq the host handled (control-channel.ts). */
    seq: join(runDir, "ctl.seq"),
  };
}

/** True when the argv of `pid` carries `--run-dir <runDir>`: the worker of that VM, not a reuse of its pid. */
export function isWorkerOf(pid: number, runDir: string): boolean {
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
  const argv = cmdline.split("\0");
  return argv.some((a, i) => a === "--run-dir" && argv[i + 1] === runDir);
}

/** The environment a worker gets: enough to run, nothing of the daemon's (no BUN_OPTIONS, no secrets). */
function workerEnv(): Record<string, string> {
  return { PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin", HOME: process.env.HOME ?? "/" };
}

/** The libkrun implementation of `Backend`. */
export class LibkrunBackend implements Backend {
  readonly name = "libkrun" as const;
  readonly capabilities: BackendCapabilities = { pauseResume: false, memorySnapshots: false, diskLayers: true, workspaceSnapshots: false };

  /** Where every spawned worker is recorded (Backend.journal). */
  journal?: VmJournal;
  /**
   * Every worker this backend spawned or adopted that still runs, by pid,
   * boots in flight included: {@link killAll} must reach them all.
   */
  private readonly spawned = new Map<number, VmProcess>();
  /** Set by killAll: no new worker is spawned or adopted after it. */
  private closed = false;

  constructor(private readonly opts: LibkrunBackendOptions) {
    this.journal = opts.journal;
  }

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
    const paths = krunPaths(spec.runDir);
    if (this.closed) throw new Error(`VM ${spec.id} not started: aegisd is shutting down`);
    if (Buffer.byteLength(paths.ctl) > SUN_PATH_MAX) throw new Error(`socket path ${paths.ctl} is longer than ${SUN_PATH_MAX} bytes\nhint: use a shorter AEGIS_HOME`);
    rmSync(paths.console, { force: true });
    const cfg = workerConfig(spec, { library: this.opts.library, rootDir: guest.rootDir, baseRootfs: guest.baseRootfs, paths, logLevel: this.opts.logLevel });
    const channel = ControlChannel.listen(paths.ctl, undefined, { seqFile: paths.seq });
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
      const vmProc = spawnedProcess(p);
      // Recorded before the configuration is written: the VM does not exist yet, so nothing uses it unrecorded.
      this.journalSpawn(spec, p.pid);
      this.track(spec.id, vmProc);
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
      return new LibkrunVm(spec, vmProc, channel, paths.console, performance.now() - t0);
    } catch (err) {
      if (proc) {
        killGroup(proc.pid);
        await proc.exited;
      }
      channel.close("boot failed");
      throw err;
    }
  }

  /**
   * Kill every worker this backend spawned or adopted that still runs,
   * except the pids in `keep` (VMs left running on purpose for the next
   * daemon), and refuse to spawn more: the last step of a daemon shutdown.
   */
  async killAll(keep: ReadonlySet<number> = new Set()): Promise<void> {
    this.closed = true;
    const victims = [...this.spawned.values()].filter((p) => !keep.has(p.pid));
    for (const v of victims) killGroup(v.pid);
    await Promise.all(victims.map((v) => v.exited));
  }

  /**
   * See Backend.adopt. Verifies, in order: the record is not a template
   * build, the pid runs with the recorded start time, its command line
   * names the VM's run directory; then listens on the VM's control socket
   * again and waits for the guest to connect and answer `ping` (the
   * handshake), calls `beforeReplay` and replays what the guest held by seq.
   * Any failure throws (the daemon kills the recorded worker when it is still
   * the recorded process, and logs it); nothing is killed here.
   */
  async adopt(rec: VmProcessRecord, spec: VmSpec, beforeReplay: (vm: Vm) => void): Promise<LibkrunVm> {
    if (this.closed) throw new Error(`VM ${spec.id} not adopted: aegisd is shutting down`);
    if (rec.template) throw new Error(`VM ${spec.id} is a template build, which is never adopted`);
    if (!sameProcess(rec.pid, rec.startTime)) throw new Error(`VM ${spec.id}: its libkrun worker (pid ${rec.pid}, start time ${rec.startTime}) is no longer running`);
    if (!isWorkerOf(rec.pid, spec.runDir)) throw new Error(`VM ${spec.id}: pid ${rec.pid} is not its libkrun worker (its command line does not name --run-dir ${spec.runDir})`);
    const paths = krunPaths(spec.runDir);
    const timeoutMs = this.opts.adoptTimeoutMs ?? 10_000;
    const t0 = performance.now();
    const channel = ControlChannel.listen(paths.ctl, undefined, { seqFile: paths.seq, adopt: true });
    try {
      const proc = adoptedProcess(rec.pid, rec.startTime);
      await channel.waitConnected(timeoutMs);
      await channel.call("ping", undefined, { timeoutMs });
      const vm = new LibkrunVm(spec, proc, channel, paths.console, 0);
      beforeReplay(vm);
      const replayed = await channel.resume(timeoutMs);
      this.opts.log?.("VM adopted", { vm: spec.id, backend: "libkrun", pid: rec.pid, replayed, ms: Math.round(performance.now() - t0) });
      this.track(spec.id, proc);
      return vm;
    } catch (err) {
      channel.close(`adoption failed: ${err instanceof Error ? err.message : String(err)}`);
      throw new Error(`VM ${spec.id}: its libkrun worker (pid ${rec.pid}) did not take the control channel back: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /** Record a just-spawned worker (pid + start time) before its VM is used. */
  private journalSpawn(spec: VmSpec, pid: number): void {
    const journal = this.journal;
    if (!journal) return;
    const startTime = processStartTime(pid);
    if (startTime === null) return; // already gone: boot reports why
    journal.spawned({ id: spec.id, pid, startTime, template: false }, spec);
  }

  /** Track a worker for killAll, and drop its journal record once it exits. */
  private track(id: string, proc: VmProcess): void {
    this.spawned.set(proc.pid, proc);
    void proc.exited.then(() => {
      if (this.spawned.get(proc.pid) === proc) this.spawned.delete(proc.pid);
      this.journal?.gone(id, proc.pid);
    });
  }
}

/**
 * @module guest/harness/processes
 * User processes inside the guest: start them chrooted into the rootfs,
 * stream their output, forward signals, report their exit.
 *
 * Chroot + working directory: Bun.spawn cannot chroot, and busybox `chroot`
 * always changes to `/`, so processes are started through
 * `busybox nsenter -r<root> -w<root/cwd> [-S uid] -- /abs/program...` (from
 * the initramfs, so the user's image needs no shell). nsenter opens the
 * working directory before chroot, chroots, fchdirs, switches the uid, then
 * execs the program with the given environment, so the pid we get is the
 * user's program. The program is always an absolute path that the harness
 * found in the image's PATH first (exec-path.ts): given a bare name, busybox
 * would run its own applet of that name instead of the image's program.
 * The user (users.ts) is resolved in the image's /etc/passwd and /etc/group;
 * its group ids are set around the spawn (libc.ts withGroups). Each process
 * gets its own session (`detached`), and signals go to its whole process group.
 *
 * Output: each stream is read as it arrives, split into chunks of at most
 * OUTPUT_CHUNK_BYTES, base64-encoded and sent as `output` notifications; a
 * pump awaits each send before reading more, so a slow host slows the
 * process instead of growing memory. A process started with a `window` is
 * also held to the host's acknowledgements (output-credit.ts), so a stopped
 * reader at the far end of aegisd stops it too. `exit` is sent only after
 * both pumps hit EOF, so nothing written before exit is lost. If a
 * background grandchild keeps the pipes open, the pumps are cut once they
 * have been idle (not waiting for credit) for EXIT_DRAIN_MS after the exit.
 */
import { closeSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { constants } from "node:os";
import { posix } from "node:path";
import type { RunParams } from "../../src/api/schema/control.ts";
import { OUTPUT_CHUNK_BYTES, RpcErrorCode } from "../../src/api/schema/guest-wire.ts";
import { RpcError } from "../../src/api/jsonrpc.ts";
import { containerRoot } from "./container-root.ts";
import { findExecutable } from "./exec-path.ts";
import { INJECT_DIR, INJECTED_BINARIES } from "./inject.ts";
import { withGroups } from "./libc.ts";
import { masterStream, openPty, type Pty, resizePty, writeMaster } from "./pty.ts";
import { type Credentials, resolveUser } from "./users.ts";
import { OutputCredit } from "./output-credit.ts";
import { log } from "./log.ts";
import { PhaseLog } from "./phase-log.ts";
import type { z } from "zod";

/** The interactive end of a process: a pipe to its stdin, or the master of its terminal. */
type Input = { kind: "pipe"; sink: Bun.FileSink } | { kind: "tty"; pty: Pty };

/** How long to keep reading output after the process exited while a descendant holds its pipes. */
const EXIT_DRAIN_MS = 1000;

/** How often the exit drain checks whether the pumps are done. */
const EXIT_DRAIN_STEP_MS = 20;

/** PATH given to processes that do not set one. */
export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** Where processes see the host's loopback services (QEMU user networking gateway). */
export const HOST_IP = "10.0.2.2";

/** What the table needs from the harness. */
export interface ProcessSink {
  output(id: string, stream: "stdout" | "stderr", data: string): Promise<void>;
  exit(id: string, code: number, signal?: string): Promise<void>;
  /** Called after a primary process's `exit` has been sent. */
  primaryExited(): void;
  /** Register/unregister pids that Bun owns, so the orphan reaper leaves them alone. */
  own(pid: number): void;
  disown(pid: number): void;
}

/**
 * What to start for `argv` with `env`. A bare injected binary name
 * (`aegis-agent`) becomes its absolute path, so the injected binaries are
 * found whatever PATH the image sets (a scratch image's PATH may lack
 * /usr/bin); argv[0]'s basename, which selects the role, is unchanged. An
 * injected binary is this same Bun executable, so it also inherits the
 * harness's JavaScriptCore JIT setting (`BUN_JSC_useBaselineJIT=0` under
 * TCG, set by /init): measured in the guest, `aegis-agent --help` takes
 * 2.0 s without it and 0.9 s with it.
 */
export function resolveInjected(argv: string[], env: Record<string, string>, harnessEnv: Record<string, string | undefined> = {}): { argv: string[]; env: Record<string, string> } {
  const [cmd, ...rest] = argv;
  if (cmd === undefined) return { argv, env };
  const names = INJECTED_BINARIES as readonly string[];
  const bare = names.includes(cmd);
  if (!bare && !(cmd.startsWith(`${INJECT_DIR}/`) && names.includes(cmd.slice(INJECT_DIR.length + 1)))) return { argv, env };
  const jit = harnessEnv.BUN_JSC_useBaselineJIT;
  return {
    argv: bare ? [`${INJECT_DIR}/${cmd}`, ...rest] : argv,
    env: jit !== undefined && env.BUN_JSC_useBaselineJIT === undefined ? { ...env, BUN_JSC_useBaselineJIT: jit } : env,
  };
}

/** Build the argv that runs `argv` chrooted at `root` as `uid` (or directly when there is no root). */
export function chrootArgv(root: string | undefined, cwd: string, argv: string[], uid?: number): string[] {
  if (!root) return argv;
  const wd = `${root}${cwd.startsWith("/") ? cwd : `/${cwd}`}`;
  return ["/bin/busybox", "nsenter", `-r${root}`, `-w${wd}`, ...(uid !== undefined ? ["-S", String(uid)] : []), "--", ...argv];
}

/**
 * The program to exec for `argv` inside `root`: injected binaries by their
 * fixed path, anything else looked up in the image's PATH (exec-path.ts).
 * A missing program is the error `docker run` gives.
 */
export function resolveProgram(root: string | undefined, argv: string[], env: Record<string, string>, cwd: string, harnessEnv: Record<string, string | undefined> = {}): { argv: string[]; env: Record<string, string> } {
  const start = resolveInjected(argv, env, harnessEnv);
  const [cmd, ...rest] = start.argv;
  if (!root || cmd === undefined || cmd.includes("/")) return start;
  const found = findExecutable(root, cmd, start.env.PATH ?? DEFAULT_PATH, cwd);
  if (found === null) throw new RpcError(RpcErrorCode.spawnFailed, `exec: "${cmd}": executable file not found in $PATH (${start.env.PATH ?? DEFAULT_PATH})`);
  return { argv: [found, ...rest], env: start.env };
}

/** The credentials of `user` in the rootfs at `root`. */
function credentialsIn(root: string, user: string): Credentials {
  const read = (f: string) => (existsSync(`${root}${f}`) ? readFileSync(`${root}${f}`, "utf8") : "");
  try {
    return resolveUser(user, read("/etc/passwd"), read("/etc/group"));
  } catch (err) {
    throw new RpcError(RpcErrorCode.spawnFailed, (err as Error).message);
  }
}

/** The environment a process receives: the requested env plus AEGIS_HOST_IP and a default PATH. */
export function processEnv(env: Record<string, string>): Record<string, string> {
  return { PATH: DEFAULT_PATH, HOME: "/root", ...env, AEGIS_HOST_IP: HOST_IP };
}

/** Map a signal name to its number (for the 128+N exit code). */
export function signalNumber(name: string): number {
  const n = (constants.signals as Record<string, number>)[name];
  if (n === undefined) throw new RpcError(RpcErrorCode.invalidParams, `unknown signal ${name}`);
  return n;
}

/** Map a signal number to its name (SIGxxx), or `SIG<n>` when unknown. */
export function signalName(n: number): string {
  return Object.entries(constants.signals).find(([, v]) => v === n)?.[0] ?? `SIG${n}`;
}

/**
 * Send `signal` to `proc`'s process group, or to the process itself when the
 * group is gone (ESRCH; a process that is already gone is ignored).
 */
function signalGroup(proc: Bun.Subprocess, signal: NodeJS.Signals): void {
  try {
    process.kill(-proc.pid, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
    if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
  }
}

/** The running processes of this guest, by host-chosen id. */
export class ProcessTable {
  private readonly procs = new Map<string, Bun.Subprocess>();
  /** Interactive ends of processes started with `stdin` or `tty`. */
  private readonly inputs = new Map<string, Input>();
  private readonly credits = new Map<string, OutputCredit>();
  /** Ids of the processes started `ends_with_client` (execs), which `endUntracked` may end. */
  private readonly clientBound = new Set<string>();
  /** The first process of this VM is timed step by step (a console line, phase-log.ts). */
  private firstTimed = true;

  constructor(
    private root: string | undefined,
    private readonly sink: ProcessSink,
  ) {}

  /** Set the directory processes are chrooted into (after a deferred `setup`). */
  setRoot(root: string | undefined): void {
    this.root = root;
  }

  /** Start a process; returns its pid. Output and exit are reported through the sink. */
  run(p: z.output<typeof RunParams>): { pid: number } {
    const phases = this.firstTimed ? new PhaseLog() : undefined;
    this.firstTimed = false;
    if (this.procs.has(p.id)) throw new RpcError(RpcErrorCode.duplicateId, `process id ${p.id} is already running`);
    // Resolved against "/" so `..` cannot climb out of the rootfs.
    const cwd = posix.resolve("/", p.cwd ?? "/");
    // A pod VM's container runs in its own directory of the rootfs (container-root.ts).
    const root = p.root_subdir === undefined ? this.root : containerRoot(this.root, p.root_subdir);
    if (root && !existsSync(`${root}${cwd}`)) mkdirSync(`${root}${cwd}`, { recursive: true });
    let proc: Bun.Subprocess;
    const resolved = p.user !== undefined && root ? credentialsIn(root, p.user) : null;
    // OCI additionalGids (the containerd shim): added to the user's own supplementary groups.
    const creds = resolved && p.groups ? { ...resolved, groups: [...new Set([...(resolved.groups.length > 0 ? resolved.groups : [resolved.gid]), ...p.groups])] } : resolved;
    const env = processEnv(p.env);
    if (creds && p.env.HOME === undefined) env.HOME = creds.home;
    if (p.tty && env.TERM === undefined) env.TERM = "xterm";
    phases?.mark("credentials + env");
    const start = resolveProgram(root, p.argv, env, cwd, process.env);
    const argv = chrootArgv(root, cwd, start.argv, creds?.uid);
    phases?.mark("resolve program");
    let pty: Pty | undefined;
    try {
      pty = p.tty ? openPty(root, p.tty.cols, p.tty.rows) : undefined;
      const slave = pty?.slave;
      const spawn = () =>
        // A terminal process gets its own session with the pty as controlling terminal (busybox setsid -c
        // makes stdin the ctty); it must not be a group leader already, so it is not `detached`.
        Bun.spawn(slave === undefined ? argv : ["/bin/busybox", "setsid", "-c", ...argv], {
          env: start.env,
          cwd: "/",
          stdin: slave ?? (p.stdin ? "pipe" : "ignore"),
          stdout: slave ?? "pipe",
          stderr: slave ?? "pipe",
          detached: slave === undefined,
        });
      proc = creds ? withGroups(creds.gid, creds.groups, spawn) : spawn();
    } catch (err) {
      if (pty) closeSync(pty.master);
      throw new RpcError(RpcErrorCode.spawnFailed, `cannot start ${p.argv[0]}: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      // The child holds the slave now; ours would keep the master from ever seeing EIO.
      if (pty) closeSync(pty.slave);
    }
    this.procs.set(p.id, proc);
    // A primary process is never client-bound, whatever the request says.
    if (p.ends_with_client === true && p.primary !== true) this.clientBound.add(p.id);
    if (pty) this.inputs.set(p.id, { kind: "tty", pty });
    else if (p.stdin) this.inputs.set(p.id, { kind: "pipe", sink: proc.stdin as Bun.FileSink });
    const credit = new OutputCredit(p.window);
    this.credits.set(p.id, credit);
    this.sink.own(proc.pid);
    phases?.mark("spawn");
    // Start pumping after the current microtasks, so the `run` response is queued before the first `output`.
    setImmediate(() => {
      this.supervise(p.id, proc, p.primary === true, credit, pty, phases).catch((err: unknown) => {
        log(`process ${p.id} supervision failed: ${String(err)}`);
      });
    });
    return { pid: proc.pid };
  }

  private input(id: string): Input {
    const input = this.inputs.get(id);
    if (!input) throw new RpcError(this.procs.has(id) ? RpcErrorCode.invalidParams : RpcErrorCode.noSuchProcess, this.procs.has(id) ? `process ${id} was started without stdin` : `no running process with id ${id}`);
    return input;
  }

  /** Write to the stdin (or terminal) of process `id`. */
  async writeStdin(id: string, data: Uint8Array): Promise<void> {
    const input = this.input(id);
    if (input.kind === "tty") return writeMaster(input.pty.master, data);
    input.sink.write(data);
    await input.sink.flush();
  }

  /** Close the stdin of process `id` (a terminal gets its EOF character, as Ctrl+D would send). */
  async closeStdin(id: string): Promise<void> {
    const input = this.input(id);
    if (input.kind === "tty") await writeMaster(input.pty.master, Buffer.from([4]));
    else await input.sink.end();
  }

  /** Resize the terminal of process `id`. */
  resize(id: string, cols: number, rows: number): void {
    const input = this.input(id);
    if (input.kind !== "tty") throw new RpcError(RpcErrorCode.invalidParams, `process ${id} has no terminal`);
    resizePty(input.pty, cols, rows);
  }

  /** The host consumed `bytes` of process `id`'s output (`output.ack`); unknown ids are ignored. */
  ack(id: string, bytes: number): void {
    this.credits.get(id)?.ack(bytes);
  }

  /** Send `signal` to the process group of process `id`. */
  signal(id: string, signal: string): void {
    const proc = this.procs.get(id);
    if (!proc) throw new RpcError(RpcErrorCode.noSuchProcess, `no running process with id ${id}`);
    signalNumber(signal);
    try {
      process.kill(-proc.pid, signal as NodeJS.Signals);
    } catch (err) {
      // ESRCH on the group means the leader exited but its pipes are still draining; signal the pid itself.
      if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
      proc.kill(signal as NodeJS.Signals);
    }
  }

  /** Ids of the running processes (exit not yet reported). */
  ids(): string[] {
    return [...this.procs.keys()];
  }

  /**
   * End every process started `ends_with_client` whose id is not in `keep`
   * (after a daemon re-adopted the VM, `processes.end_untracked`): SIGTERM to
   * its process group now, SIGKILL to the group `graceMs` later. Their `exit`
   * is reported as usual. Returns the ids being ended.
   */
  endUntracked(keep: ReadonlySet<string>, graceMs: number): string[] {
    const ended: string[] = [];
    for (const [id, proc] of this.procs) {
      if (!this.clientBound.has(id) || keep.has(id)) continue;
      ended.push(id);
      signalGroup(proc, "SIGTERM");
      // The whole group, even when its leader is gone: a child that ignored SIGTERM may hold on.
      setTimeout(() => {
        try {
          process.kill(-proc.pid, "SIGKILL");
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== "ESRCH") log(`cannot kill untracked process ${id}: ${String(err)}`);
        }
      }, graceMs);
    }
    return ended;
  }

  /** Kill every process group (used at shutdown). */
  killAll(): void {
    for (const proc of this.procs.values()) {
      try {
        process.kill(-proc.pid, "SIGKILL");
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
      }
    }
  }

  private async supervise(id: string, proc: Bun.Subprocess, primary: boolean, credit: OutputCredit, pty: Pty | undefined, phases?: PhaseLog): Promise<void> {
    // A terminal has one stream: everything the process writes to it is stdout.
    const out = this.pump(id, "stdout", pty ? masterStream(pty.master) : (proc.stdout as ReadableStream<Uint8Array>), credit);
    const err = this.pump(id, "stderr", pty ? new ReadableStream<Uint8Array>({ start: (c) => c.close() }) : (proc.stderr as ReadableStream<Uint8Array>), credit);
    phases?.mark("pumps");
    await proc.exited;
    phases?.mark("exited");
    this.sink.disown(proc.pid);
    let drained = false;
    let failed = false;
    // A pump that failed stays undrained here; its error comes out of cut() below.
    const both = Promise.all([out.done, err.done]).then(
      () => {
        drained = true;
      },
      () => {
        failed = true;
      },
    );
    // Time spent held back by the host does not count: only a pipe that stays open and quiet is cut.
    // Each step ends early once both pumps are done: polling alone added 20-60 ms to every exit.
    // Once a pump failed, `both` is settled and would end every step at once without yielding to the
    // event loop (the ack that frees a pump waiting for credit could never arrive): plain steps then.
    for (let idle = 0; !drained && idle < EXIT_DRAIN_MS; ) {
      await (failed ? Bun.sleep(EXIT_DRAIN_STEP_MS) : Promise.race([both, Bun.sleep(EXIT_DRAIN_STEP_MS)]));
      if (!drained && !credit.waiting) idle += EXIT_DRAIN_STEP_MS;
    }
    if (!drained) {
      credit.release();
      await Promise.all([out.cut(), err.cut()]);
    }
    this.credits.delete(id);
    this.procs.delete(id);
    this.clientBound.delete(id);
    this.inputs.delete(id);
    if (pty) closeSync(pty.master);
    const raw = proc.signalCode;
    const sig = raw === null || raw === undefined ? undefined : typeof raw === "number" ? signalName(raw) : raw;
    const code = sig ? 128 + signalNumber(sig) : (proc.exitCode ?? 0);
    phases?.mark("drained");
    await this.sink.exit(id, code, sig);
    phases?.mark("exit sent");
    if (phases) log(phases.line("first process"));
    if (primary) this.sink.primaryExited();
  }

  private pump(id: string, stream: "stdout" | "stderr", output: ReadableStream<Uint8Array>, credit: OutputCredit) {
    const reader = output.getReader();
    let cut = false;
    const done = (async () => {
      for (;;) {
        const { value, done: eof } = await reader.read();
        if (eof || cut) return;
        for (let off = 0; off < value.length; off += OUTPUT_CHUNK_BYTES) {
          const chunk = value.subarray(off, off + OUTPUT_CHUNK_BYTES);
          await this.sink.output(id, stream, Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length).toString("base64"));
          await credit.sent(chunk.length);
        }
      }
    })();
    return {
      done,
      /** Stop reading; resolves once the in-flight chunk (if any) has been sent. */
      cut: async () => {
        cut = true;
        await reader.cancel();
        await done;
      },
    };
  }
}

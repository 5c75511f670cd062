/**
 * @module daemon/e2b/processes
 * envd's `process.Process` service over the control channel: a per-sandbox
 * process table in aegisd, keyed by the guest pid (E2B identifies processes
 * by pid, and a client may reconnect to one with `Connect` or list them).
 *
 * Each process keeps a bounded replay buffer of its output events
 * ({@link REPLAY_BYTES}); `Connect` replays it and then follows live. A
 * process outlives the stream that started it (E2B's background commands);
 * it ends with its exit, a signal, or the sandbox going away. Ended processes
 * stay listed for `Connect` for {@link ENDED_KEEP_MS} (a reconnect racing the
 * exit still gets the end event), then go.
 *
 * E2B runs commands as `/bin/bash -l -c CMD` and terminals as
 * `/bin/bash -i -l`; a rootfs without bash (the busybox base, Alpine) runs
 * them with `/bin/sh` instead, which takes the same flags.
 */
import { RpcError } from "../../api/jsonrpc.ts";
import { ConnectError } from "./connect.ts";
import type { GuestProcess } from "../../vmm/guest-process.ts";
import { isSpawnFailure, startInInstance } from "../instances/exec.ts";
import type { InstancesService } from "../instances/service.ts";

/** Output bytes of one process kept for a later `Connect`. */
export const REPLAY_BYTES = 1024 * 1024;
/** How long an ended process stays in the table. */
export const ENDED_KEEP_MS = 30_000;
/** Most processes one sandbox's table tracks at once. */
export const MAX_PROCESSES = 1024;

/** A `ProcessEvent` in the JSON mapping. */
export type ProcessEvent = Record<string, unknown>;
type Listener = (ev: ProcessEvent | Error) => void;

interface Entry {
  pid: number;
  tag?: string;
  config: { cmd: string; args: string[]; envs: Record<string, string>; cwd?: string };
  proc: GuestProcess;
  pty: boolean;
  replay: { ev: ProcessEvent; bytes: number }[];
  replayBytes: number;
  listeners: Set<Listener>;
  end: ProcessEvent | Error | null;
}

/** What a Start asks for, already validated. */
export interface StartSpec {
  cmd: string;
  args: string[];
  envs: Record<string, string>;
  cwd?: string;
  user?: string;
  tag?: string;
  stdin: boolean;
  pty?: { cols: number; rows: number };
}

function endEvent(code: number, signal: string | undefined): ProcessEvent {
  // Go's ProcessState strings, which envd reports and the SDK shows in CommandExitError.
  if (signal) {
    const name = signal === "SIGKILL" ? "killed" : signal === "SIGTERM" ? "terminated" : signal.toLowerCase();
    return { end: { exitCode: -1, exited: false, status: `signal: ${name}`, error: `signal: ${name}` } };
  }
  return { end: { exitCode: code, exited: true, status: `exit status ${code}`, ...(code !== 0 ? { error: `exit status ${code}` } : {}) } };
}

/** The process tables of all sandboxes. */
export class SandboxProcesses {
  private readonly tables = new Map<string, Map<number, Entry>>();
  private readonly hasBash = new Map<string, boolean>();

  constructor(private readonly instances: InstancesService) {}

  private table(id: string): Map<number, Entry> {
    let t = this.tables.get(id);
    if (!t) {
      t = new Map();
      this.tables.set(id, t);
    }
    return t;
  }

  /** Forget a sandbox (killed). */
  forget(id: string): void {
    this.tables.delete(id);
    this.hasBash.delete(id);
  }

  private find(id: string, sel: { pid?: number; tag?: string }): Entry {
    const t = this.table(id);
    const e = sel.pid !== undefined ? t.get(sel.pid) : [...t.values()].find((x) => x.tag !== undefined && x.tag === sel.tag);
    if (!e) throw new ConnectError("not_found", `process with ${sel.pid !== undefined ? `pid ${sel.pid}` : `tag "${sel.tag}"`} not found`);
    return e;
  }

  private live(id: string, sel: { pid?: number; tag?: string }): Entry {
    const e = this.find(id, sel);
    if (e.end) throw new ConnectError("not_found", `process ${e.pid} has already exited`);
    return e;
  }

  /** Look the sandbox's shell up now, so the first command does not wait for it (failures surface then). */
  prime(id: string): void {
    this.program(id, "/bin/bash").catch(() => undefined);
  }

  /** `/bin/bash` when the rootfs has it, else `/bin/sh` (see the module notes). */
  private async program(id: string, cmd: string): Promise<string> {
    if (cmd !== "/bin/bash") return cmd;
    let bash = this.hasBash.get(id);
    if (bash === undefined) {
      const rt = await this.instances.ensureRunning(id);
      if (!rt.vm) throw new ConnectError("unavailable", `sandbox ${id} has no running VM`);
      bash = await rt.vm.channel.call("fs.stat", { path: "/bin/bash" }).then(
        () => true,
        (err: unknown) => {
          // Only "no such file" means no bash; a VM that went away is an error of its own.
          if (err instanceof RpcError && (err.data as { errno?: string } | undefined)?.errno === "ENOENT") return false;
          throw err;
        },
      );
      this.hasBash.set(id, bash);
    }
    return bash ? cmd : "/bin/sh";
  }

  /** Start a process; resolves with its pid once it runs. Events go to `listener` (start first). */
  async start(id: string, spec: StartSpec, listener: Listener): Promise<number> {
    const table = this.table(id);
    if ([...table.values()].filter((e) => !e.end).length >= MAX_PROCESSES) throw new ConnectError("resource_exhausted", `sandbox ${id} already runs ${MAX_PROCESSES} processes`);
    const program = await this.program(id, spec.cmd);
    let entry: Entry | undefined;
    const early: { ev: ProcessEvent; bytes: number }[] = [];
    const push = (ev: ProcessEvent, bytes: number) => {
      if (!entry) return void early.push({ ev, bytes });
      entry.replay.push({ ev, bytes });
      entry.replayBytes += bytes;
      while (entry.replayBytes > REPLAY_BYTES && entry.replay.length > 1) entry.replayBytes -= entry.replay.shift()!.bytes;
      for (const l of entry.listeners) l(ev);
    };
    const out = (stream: "stdout" | "stderr") => (b: Uint8Array) => push({ data: { [spec.pty ? "pty" : stream]: Buffer.from(b).toString("base64") } }, b.length);
    this.instances.activity.started(id);
    let proc: GuestProcess;
    try {
      proc = await startInInstance(
        this.instances,
        id,
        { command: [program, ...spec.args], env: spec.envs, ...(spec.cwd !== undefined ? { cwd: spec.cwd } : {}), ...(spec.user !== undefined ? { user: spec.user } : {}) },
        { stdin: spec.stdin || spec.pty !== undefined, ...(spec.pty ? { tty: spec.pty } : {}), onStdout: out("stdout"), onStderr: out("stderr") },
      );
    } catch (err) {
      this.instances.activity.ended(id);
      // The program cannot start (not found, unknown user): the caller's mistake; anything else is the sandbox's.
      throw isSpawnFailure(err) ? new ConnectError("invalid_argument", `cannot start ${program}: ${err.message}`) : err;
    }
    entry = {
      pid: proc.pid,
      ...(spec.tag !== undefined ? { tag: spec.tag } : {}),
      config: { cmd: spec.cmd, args: spec.args, envs: spec.envs, ...(spec.cwd !== undefined ? { cwd: spec.cwd } : {}) },
      proc,
      pty: spec.pty !== undefined,
      replay: [],
      replayBytes: 0,
      listeners: new Set([listener]),
      end: null,
    };
    table.set(proc.pid, entry);
    listener({ start: { pid: proc.pid } });
    // Output that arrived before the `run` reply (the guest may be quicker than the answer).
    for (const e of early) push(e.ev, e.bytes);
    const e = entry;
    const finish = (end: ProcessEvent | Error) => {
      this.instances.activity.ended(id);
      e.end = end;
      for (const l of e.listeners) l(end);
      e.listeners.clear();
      setTimeout(() => {
        if (table.get(e.pid) === e) table.delete(e.pid);
      }, ENDED_KEEP_MS).unref?.();
    };
    proc.exited.then(
      (x) => finish(endEvent(x.code, x.signal)),
      (err: unknown) => finish(new ConnectError("unavailable", `the sandbox went away: ${(err as Error).message}`)),
    );
    return proc.pid;
  }

  /** Follow a process: the start event, the replay buffer, then live events. Returns the unsubscribe function. */
  connect(id: string, sel: { pid?: number; tag?: string }, listener: Listener): () => void {
    const e = this.find(id, sel);
    listener({ start: { pid: e.pid } });
    for (const r of e.replay) listener(r.ev);
    if (e.end) {
      listener(e.end);
      return () => undefined;
    }
    e.listeners.add(listener);
    return () => e.listeners.delete(listener);
  }

  /** Stop following (a started process keeps running). */
  unsubscribe(id: string, pid: number, listener: Listener): void {
    this.tables.get(id)?.get(pid)?.listeners.delete(listener);
  }

  /** The running processes. */
  list(id: string): Record<string, unknown>[] {
    return [...this.table(id).values()]
      .filter((e) => !e.end)
      .map((e) => ({ config: e.config, pid: e.pid, ...(e.tag !== undefined ? { tag: e.tag } : {}) }));
  }

  /** Write to a process's stdin or terminal. */
  async input(id: string, sel: { pid?: number; tag?: string }, bytes: Uint8Array): Promise<void> {
    await this.live(id, sel).proc.write(bytes);
  }

  /** Close a process's stdin. */
  async closeStdin(id: string, sel: { pid?: number; tag?: string }): Promise<void> {
    await this.live(id, sel).proc.closeStdin();
  }

  /** SIGTERM or SIGKILL a process (its process group). */
  async signal(id: string, sel: { pid?: number; tag?: string }, signal: "SIGTERM" | "SIGKILL"): Promise<void> {
    await this.live(id, sel).proc.signal(signal);
  }

  /** Resize a process's terminal. */
  async resize(id: string, sel: { pid?: number; tag?: string }, cols: number, rows: number): Promise<void> {
    const e = this.live(id, sel);
    if (!e.pty) throw new ConnectError("failed_precondition", `process ${e.pid} has no terminal to resize`);
    await e.proc.resize(cols, rows);
  }
}

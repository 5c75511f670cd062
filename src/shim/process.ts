/**
 * @module shim/process
 * One container process (the task's init, or an exec) run in the task's VM
 * through an aegisd exec session: its stdio FIFOs, terminal size, signals
 * and exit. States follow containerd's: created (after Create/Exec), running
 * (after Start), stopped (after the exit). The exit code is the guest
 * process's (128 + signal for a signalled one, as a shell reports it).
 */
import { constants } from "node:os";
import { SessionOutput } from "../api/schema/session.ts";
import type { AegisdFront } from "./aegisd.ts";
import { InputPipe, OutputPipe } from "./io.ts";
import type { GuestProcessSpec } from "./oci-spec.ts";

/** containerd's task status enum (containerd.v1.types.Status). */
export const Status = { unknown: 0, created: 1, running: 2, stopped: 3, paused: 4, pausing: 5 } as const;

/** The stdio a process was created with (FIFO paths; empty = none). */
export interface Stdio {
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
}

/** How a process ended. */
export interface ProcessExit {
  status: number;
  at: number;
}

const signalNames = new Map<number, string>(Object.entries(constants.signals).map(([name, n]) => [n, name]));

/** The signal name for number `n` (throws for an unknown one). */
export function signalName(n: number): string {
  const name = signalNames.get(n);
  if (!name) throw new Error(`unknown signal number ${n}`);
  return name;
}

/** One process of the task. */
export class ShimProcess {
  state: "created" | "running" | "stopped" = "created";
  exit: ProcessExit | null = null;
  /** A pid for containerd: the guest's pids are not visible from the host, so ids are ours. */
  readonly pid: number;
  private ws: WebSocket | null = null;
  private stdinPipe: InputPipe | null = null;
  private pendingSize: { cols: number; rows: number } | null = null;
  /** CloseIO came before Start (ctr's stdin may end before the process starts). */
  private stdinClosedEarly = false;
  private readonly done: Promise<ProcessExit>;
  private resolveDone!: (e: ProcessExit) => void;

  constructor(
    readonly execId: string,
    readonly spec: GuestProcessSpec,
    readonly stdio: Stdio,
    pid: number,
    private readonly log: (msg: string) => void,
  ) {
    this.pid = pid;
    this.done = new Promise((r) => {
      this.resolveDone = r;
    });
  }

  /** Resolves with the exit once the process has ended and its output is flushed. */
  wait(): Promise<ProcessExit> {
    return this.done;
  }

  /** Start the process in instance `instanceId`; resolves once aegisd has it running (or failed). */
  start(front: AegisdFront, instanceId: string, onExit: (p: ShimProcess) => void): Promise<void> {
    const stdout = new OutputPipe(this.stdio.stdout, this.log);
    const stderr = this.stdio.terminal ? stdout : new OutputPipe(this.stdio.stderr, this.log);
    const ws = front.session(instanceId);
    this.ws = ws;
    this.state = "running";
    const finish = async (status: number): Promise<void> => {
      if (this.exit) return;
      this.exit = { status, at: Date.now() };
      this.log(`process ${this.execId || "init"} exited with status ${status}`);
      this.stdinPipe?.close();
      await stdout.close();
      if (stderr !== stdout) await stderr.close();
      this.state = "stopped";
      this.ws = null;
      this.resolveDone(this.exit);
      onExit(this);
    };
    return new Promise<void>((resolve, reject) => {
      let opened = false;
      ws.onopen = () => {
        opened = true;
        const size = this.pendingSize ?? { cols: 80, rows: 24 };
        ws.send(
          JSON.stringify({
            type: "start",
            command: this.spec.command,
            env: this.spec.env,
            ...(this.spec.cwd ? { cwd: this.spec.cwd } : {}),
            ...(this.spec.user ? { user: this.spec.user } : {}),
            ...(this.spec.rootSubdir ? { root_subdir: this.spec.rootSubdir } : {}),
            ...(this.spec.groups ? { groups: this.spec.groups } : {}),
            stdin: this.stdio.stdin !== "" && !this.stdinClosedEarly,
            ...(this.stdio.terminal ? { tty: size } : {}),
          }),
        );
        if (this.stdio.stdin && !this.stdinClosedEarly) {
          this.stdinPipe = new InputPipe(
            this.stdio.stdin,
            (chunk) => this.send({ type: "stdin", data: Buffer.from(chunk).toString("base64") }),
            () => this.send({ type: "stdin_close" }),
            this.log,
          );
        }
        resolve();
      };
      ws.onmessage = (e) => {
        const parsed = SessionOutput.safeParse(JSON.parse(String(e.data)));
        if (!parsed.success) return this.log(`exec ${this.execId || "init"}: unexpected session message`);
        const msg = parsed.data;
        if (msg.type === "output") (msg.stream === "stdout" ? stdout : stderr).write(Buffer.from(msg.data, "base64"));
        else if (msg.type === "exit") void finish(msg.code);
        else if (msg.type === "error") {
          this.log(`process ${this.execId || "init"} failed: ${msg.error.message}`);
          if (msg.type === "error" && opened) stderr.write(Buffer.from(`aegis: ${msg.error.message}\n`));
          void finish(msg.error.code === "invalid_request" ? 126 : 255);
        }
      };
      ws.onclose = () => {
        if (!opened) reject(new Error(`aegisd refused the exec session of instance ${instanceId}`));
        // A lost session (aegisd gone, VM crashed) ends the process: containerd must learn an exit.
        void finish(255);
      };
    });
  }

  /** Send `signal` (a number) to the process. */
  kill(signal: number): void {
    if (this.state !== "running") throw new Error(`process ${this.execId || "init"} is not running`);
    this.send({ type: "signal", signal: signalName(signal) });
  }

  /** Resize its terminal (kept for the start when it has not started yet). */
  resize(cols: number, rows: number): void {
    const size = { cols: Math.min(1000, Math.max(1, cols)), rows: Math.min(1000, Math.max(1, rows)) };
    this.pendingSize = size;
    if (this.state === "running") this.send({ type: "resize", ...size });
  }

  /** Close its stdin (CloseIO). */
  closeStdin(): void {
    if (this.state === "created") this.stdinClosedEarly = true;
    else if (this.stdinPipe) this.stdinPipe.close();
  }

  private send(msg: unknown): void {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }
}

/**
 * @module daemon/instances/session
 * An interactive exec in an instance (`aegis exec -it`, the session
 * WebSocket): like exec.ts, with stdin and an optional terminal. The
 * instance is woken first and held awake until the command ends. Closing
 * the session before the end kills the command's process group.
 *
 * Output is sent as it comes, without the credit window of NDJSON execs:
 * an interactive client reads what it shows (a terminal), so a session is
 * not where a stalled reader holds a flood.
 */
import type { ExecSessionStart, SessionInput } from "../../api/schema/session.ts";
import type { SessionDriver, SessionSend } from "../api/sessions.ts";
import { isSpawnFailure, startInInstance } from "./exec.ts";
import type { InstancesService } from "./service.ts";

/** Feed one client message to a started process. */
export function feed(proc: { write(b: Uint8Array): Promise<void>; closeStdin(): Promise<void>; resize(c: number, r: number): Promise<void>; signal(s: string): Promise<void> }, msg: SessionInput, onError: (err: unknown) => void): void {
  const done = (p: Promise<void>) => void p.catch(onError);
  if (msg.type === "stdin") done(proc.write(Buffer.from(msg.data, "base64")));
  else if (msg.type === "stdin_close") done(proc.closeStdin());
  else if (msg.type === "resize") done(proc.resize(msg.cols, msg.rows));
  else done(proc.signal(msg.signal));
}

/** Start the session's command; resolves once it runs. */
export async function runExecSession(instances: InstancesService, ref: string, start: ExecSessionStart, send: SessionSend): Promise<SessionDriver> {
  const id = instances.row(ref).id;
  instances.activity.started(id);
  try {
    const out = (stream: "stdout" | "stderr") => (b: Uint8Array) => send({ type: "output", stream, data: Buffer.from(b).toString("base64") });
    const proc = await startInInstance(instances, id, start, { stdin: start.stdin, tty: start.tty, endsWithClient: true, onStdout: out("stdout"), onStderr: out("stderr") });
    proc.exited
      .then(
        (exit) => send({ type: "exit", code: exit.code, signal: exit.signal ?? null }),
        (err: unknown) => send({ type: "error", error: { code: "backend_error", message: err instanceof Error ? err.message : String(err) } }),
      )
      .finally(() => instances.activity.ended(id));
    return {
      // Input racing the exit fails harmlessly: the exit message follows.
      input: (msg) => feed(proc, msg, () => undefined),
      abort: () => void proc.signal("SIGKILL").catch(() => undefined),
    };
  } catch (err) {
    instances.activity.ended(id);
    if (isSpawnFailure(err)) {
      send({ type: "output", stream: "stderr", data: Buffer.from(`aegis: ${err.message}\n`).toString("base64") });
      send({ type: "exit", code: 127, signal: null });
      return { input: () => undefined, abort: () => undefined };
    }
    throw err;
  }
}

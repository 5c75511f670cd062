/**
 * @module cli/interactive
 * The client side of an interactive session (api/schema/session.ts) for
 * `aegis run -i/-t` and `aegis exec -i/-t`: a WebSocket on aegisd's socket.
 * With `-t` the local terminal goes into raw mode (every key, Ctrl+C,
 * Ctrl+Z and Ctrl+D included, reaches the guest's terminal, which turns them
 * into signals and EOF as a terminal would), its size is sent at the start
 * and on every SIGWINCH, and it is restored on every way out (exit, error,
 * signal, a lost daemon). With `-i` stdin is streamed (also without a TTY:
 * `echo data | aegis run -i -- cat`) and its end closes the guest's stdin.
 * The exit code is the guest command's.
 */
import { DaemonNotRunning } from "../api/client.ts";
import { ActionableError } from "./errors.ts";
import { fromEnvelope } from "../api/errors.ts";
import { SessionOutput, type TtySize } from "../api/schema/session.ts";
import { statePaths } from "../paths.ts";

/** What to start and how. */
export interface InteractiveOptions {
  /** API path of the session endpoint. */
  path: string;
  /** The `start` message (without `type`, `tty` and `stdin`). */
  start: Record<string, unknown>;
  tty: boolean;
  stdin: boolean;
  /** Called with the task id when the daemon reports one. */
  onTask?: (id: string) => void;
}

function terminalSize(): TtySize {
  return { cols: process.stdout.columns || 80, rows: process.stdout.rows || 24 };
}

/** Run a session to its end; resolves with the command's exit code. */
export function runInteractive(opts: InteractiveOptions): Promise<number> {
  const socket = statePaths().socket;
  const ws = new WebSocket(`ws+unix://${socket}:${opts.path}`);
  const rawTerminal = opts.tty && process.stdin.isTTY === true;
  const restore = (): void => {
    if (rawTerminal) process.stdin.setRawMode(false);
    process.stdin.pause();
  };
  return new Promise<number>((resolve, reject) => {
    let settled = false;
    const finish = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      restore();
      process.off("SIGWINCH", onResize);
      process.off("exit", restore);
      fn();
    };
    const send = (msg: unknown): void => {
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
    };
    const onResize = (): void => send({ type: "resize", ...terminalSize() });
    process.on("exit", restore);
    ws.onopen = () => {
      send({ type: "start", ...opts.start, stdin: opts.stdin, ...(opts.tty ? { tty: terminalSize() } : {}) });
      if (opts.tty) process.on("SIGWINCH", onResize);
      if (!opts.stdin) return;
      if (rawTerminal) process.stdin.setRawMode(true);
      process.stdin.on("data", (chunk: Buffer) => send({ type: "stdin", data: chunk.toString("base64") }));
      process.stdin.on("end", () => send({ type: "stdin_close" }));
      process.stdin.resume();
    };
    ws.onmessage = (e) => {
      const msg = SessionOutput.parse(JSON.parse(String(e.data)));
      if (msg.type === "task") opts.onTask?.(msg.id);
      else if (msg.type === "output") (msg.stream === "stdout" ? process.stdout : process.stderr).write(Buffer.from(msg.data, "base64"));
      else if (msg.type === "exit") finish(() => resolve(msg.code));
      else finish(() => reject(fromEnvelope({ error: msg.error })));
    };
    // Socket failures become the client's one error type (api/client.ts): not running before the
    // session opened, connection lost after. An interactive session ends with its connection.
    let opened = false;
    ws.addEventListener("open", () => {
      opened = true;
    });
    ws.onerror = () => finish(() => reject(opened ? sessionLost() : new DaemonNotRunning(socket)));
    ws.onclose = () => finish(() => reject(opened ? sessionLost() : new DaemonNotRunning(socket)));
  });
}

/**
 * An open session whose connection closed without an end: aegisd stopped,
 * crashed or restarted. Unlike a task's log, a session cannot be resumed
 * (its terminal and stdin were the connection), so say that and what to do.
 */
function sessionLost(): ActionableError {
  return new ActionableError(
    "aegis: aegisd went away during the interactive session (it stopped, crashed or is restarting); an interactive session (-i/-t) ends with its connection and cannot be resumed",
    "'aegis status' shows whether aegisd is back ('aegis up' starts it); then run the command again",
  );
}

/**
 * @module guest/harness/mcp-relay
 * The harness end of the MCP bridge: a unix socket at `/run/aegis/mcp.sock`
 * inside the user rootfs (the chroot's /run, a tmpfs) where
 * `aegis-mcp-guest` sends `mcp.*` JSON-RPC requests as NDJSON lines (see
 * api/schema/mcp.ts). Each request goes to the host as a guest -> host
 * request on the control channel with an id of the harness's own, and the
 * answer comes back with the caller's id. Params are not checked here: the
 * host validates and decides everything.
 *
 * Requests are at most {@link BRIDGE_LINE_MAX_BYTES}: any process in the
 * guest may write to the socket, and a spawn request is a few KiB; a longer line is dropped here (the caller gets an error
 * with a null id) without being buffered.
 *
 * When the host cannot be reached (the control port write fails, or no
 * answer within {@link HOST_TIMEOUT_MS}) the caller gets `unavailable`
 * (-32013).
 *
 * The socket is Bun's own (`Bun.listen`), not node:net: loading node:net
 * (and the node:stream machinery under it) took 65-170 ms of the harness's
 * start under TCG with the JIT off, for a socket most VMs never use.
 * Answers are queued per connection and written as the socket drains.
 */
import type { Socket, UnixSocketListener } from "bun";
import { chmodSync, mkdirSync, unlinkSync } from "node:fs";
import { dirname } from "node:path";
import { MCP_BRIDGE_METHOD_NAMES, McpBridgeErrorCode } from "../../src/api/schema/guest-wire.ts";
import { errorResponse, isParseFailure, LineSplitter, parseMessage, request, response, type RpcErrorObject } from "../../src/api/jsonrpc.ts";

/**
 * How long the harness waits for the host's answer. A spawn may pull an
 * image and boot a VM, which takes well over a minute under TCG.
 */
export const HOST_TIMEOUT_MS = 300_000;

/** Longest bridge request line (a spawn request is a few KiB). */
export const BRIDGE_LINE_MAX_BYTES = 1024 * 1024;

/** The bridge methods relayed; anything else is answered `methodNotFound` here. */
const BRIDGE_METHODS: ReadonlySet<string> = new Set(MCP_BRIDGE_METHOD_NAMES);

/** The host's answer to one relayed request. */
export type HostAnswer = { result: unknown } | { error: RpcErrorObject };

interface Pending {
  resolve: (a: HostAnswer) => void;
  timer: ReturnType<typeof setTimeout>;
}

/** One bridge connection: its line splitter, the bytes it still has to take, and whether it is gone. */
interface Conn {
  splitter: LineSplitter;
  out: Buffer[];
  closed: boolean;
}

/** Relays bridge requests to the host over the control channel. */
export class McpRelay {
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #server: UnixSocketListener<Conn> | undefined;

  /** `send` writes one line to the control port (rejects when it cannot). */
  constructor(
    private readonly send: (line: string) => Promise<void>,
    private readonly log: (msg: string) => void,
    private readonly timeoutMs = HOST_TIMEOUT_MS,
  ) {}

  /** Serve the bridge socket at `path` (its directory is created; a stale socket is replaced). */
  async listen(path: string): Promise<void> {
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    try {
      unlinkSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    this.#server = Bun.listen<Conn>({
      unix: path,
      socket: {
        open: (socket) => {
          socket.data = { splitter: this.#splitter(socket), out: [], closed: false };
        },
        data: (socket, chunk) => {
          for (const line of socket.data.splitter.push(chunk)) {
            this.#onLine(socket, line).catch((err: unknown) => this.log(`mcp bridge: ${String(err)}`));
          }
        },
        drain: (socket) => this.#flush(socket),
        close: (socket) => {
          socket.data.closed = true;
          socket.data.out.length = 0;
        },
        error: (_socket, err) => this.log(`mcp bridge connection: ${err.message}`),
      },
    });
    // Any process in the guest may use the instance's MCP server, whatever its uid.
    chmodSync(path, 0o666);
  }

  /** Stop serving (requests in flight still get their answers). */
  close(): void {
    this.#server?.stop();
    this.#server = undefined;
  }

  /**
   * A response from the host (a control-channel message without a method).
   * Returns false when it answers nothing the relay sent.
   */
  deliver(id: unknown, answer: HostAnswer): boolean {
    if (typeof id !== "number") return false;
    const p = this.#pending.get(id);
    if (!p) return false;
    this.#pending.delete(id);
    clearTimeout(p.timer);
    p.resolve(answer);
    return true;
  }

  /** Send one request to the host and wait for its answer (an `unavailable` error when the host cannot be reached). */
  async ask(method: string, params: unknown): Promise<HostAnswer> {
    const id = this.#nextId++;
    const answer = new Promise<HostAnswer>((resolve) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        resolve({ error: { code: McpBridgeErrorCode.unavailable, message: `the Aegis host did not answer ${method} within ${this.timeoutMs / 1000} s` } });
      }, this.timeoutMs);
      this.#pending.set(id, { resolve, timer });
    });
    try {
      await this.send(request(id, method, params));
    } catch (err) {
      this.deliver(id, { error: { code: McpBridgeErrorCode.unavailable, message: `the Aegis host is not reachable (${err instanceof Error ? err.message : String(err)})` } });
    }
    return answer;
  }

  #splitter(socket: Socket<Conn>): LineSplitter {
    return new LineSplitter({
      maxLineBytes: BRIDGE_LINE_MAX_BYTES,
      onOverlong: () => this.#write(socket, errorResponse(null, { code: McpBridgeErrorCode.invalidParams, message: `request too large: at most ${BRIDGE_LINE_MAX_BYTES} bytes per line` })),
    });
  }

  /** Queue one answer line for `socket` (dropped once it is closed). */
  #write(socket: Socket<Conn>, line: string): void {
    if (socket.data.closed) return;
    socket.data.out.push(Buffer.from(line));
    if (socket.data.out.length === 1) this.#flush(socket);
  }

  /** Write what the socket takes; the rest waits for `drain`. */
  #flush(socket: Socket<Conn>): void {
    const out = socket.data.out;
    while (out.length > 0 && !socket.data.closed) {
      const head = out[0]!;
      const n = socket.write(head);
      if (n < head.length) {
        out[0] = head.subarray(Math.max(n, 0));
        return;
      }
      out.shift();
    }
  }

  async #onLine(socket: Socket<Conn>, line: string): Promise<void> {
    const msg = parseMessage(line);
    let out: string;
    if (isParseFailure(msg)) {
      out = errorResponse(null, msg);
    } else if (msg.id === undefined || msg.id === null) {
      return; // A notification: the bridge has none, and nobody waits for an answer.
    } else if (msg.method === undefined || !BRIDGE_METHODS.has(msg.method)) {
      out = errorResponse(msg.id, { code: McpBridgeErrorCode.methodNotFound, message: `unknown bridge method ${msg.method ?? "(none)"}` });
    } else {
      const answer = await this.ask(msg.method, msg.params ?? {});
      out = "error" in answer ? errorResponse(msg.id, answer.error) : response(msg.id, answer.result);
    }
    this.#write(socket, out);
  }
}

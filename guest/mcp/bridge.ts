/**
 * @module guest/mcp/bridge
 * How `aegis-mcp-guest` reaches the host. {@link HostBridge} is the seam the
 * tools call; {@link SocketBridge} is the guest implementation: JSON-RPC 2.0
 * over NDJSON on the unix socket named by `AEGIS_MCP_BRIDGE`, which the
 * harness serves and relays to aegisd on the control channel (the protocol is
 * documented in `api/schema/mcp.ts`).
 *
 * One connection, opened on the first request and shared by concurrent ones
 * (answers are matched by id). If it breaks, the requests in flight fail and
 * the next request connects again.
 */
import { createConnection, type Socket } from "node:net";
import { McpBridgeErrorData } from "../../src/api/schema/mcp.ts";
import { isParseFailure, LineSplitter, parseMessage, request as requestLine, RpcError } from "../../src/api/jsonrpc.ts";

/** Sends one request to the host and resolves with its result; rejects with {@link BridgeRefusal} when the host says no. */
export interface HostBridge {
  request(method: string, params: unknown): Promise<unknown>;
}

/**
 * The host answered with a JSON-RPC error: a capability refusal, an unknown
 * child, a bad request. `message` is the host's sentence; `hint` its remedy.
 */
export class BridgeRefusal extends RpcError {
  override name = "BridgeRefusal";
  /** The daemon's error code (`invalid_request`, `not_found`...), when it sent one. */
  readonly errorCode?: string;
  readonly hint?: string;
  constructor(code: number, message: string, data?: unknown) {
    super(code, message, data);
    const parsed = McpBridgeErrorData.safeParse(data);
    if (parsed.success) {
      this.errorCode = parsed.data.code;
      this.hint = parsed.data.hint;
    }
  }
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

/** {@link HostBridge} over a unix socket (the harness end of the control channel). */
export class SocketBridge implements HostBridge {
  readonly #path: string;
  readonly #pending = new Map<number, Pending>();
  /** The current connection: its socket and the promise that settles once it connects. */
  #conn: { socket: Socket; ready: Promise<Socket> } | undefined;
  #nextId = 1;
  #closed = false;

  constructor(path: string) {
    this.#path = path;
  }

  /** Send `method` with `params`; resolves with the host's result. */
  async request(method: string, params: unknown): Promise<unknown> {
    if (this.#closed) throw new Error(`the MCP bridge to the host is closed (request ${method})`);
    const socket = await this.#connect();
    // The connection may have died between connecting and now; a request added after its failAll would wait forever.
    if (this.#conn?.socket !== socket) throw new Error(`the host bridge at ${this.#path} closed the connection before answering (request ${method})`);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      socket.write(requestLine(id, method, params), (err) => {
        if (!err || !this.#pending.delete(id)) return;
        reject(new Error(`could not send ${method} to the host bridge at ${this.#path}: ${err.message}`));
      });
    });
  }

  /** Close the connection; requests in flight fail. */
  close(): void {
    this.#closed = true;
    const conn = this.#conn;
    this.#conn = undefined;
    this.#failAll(new Error("the MCP bridge to the host was closed"));
    conn?.socket.destroy();
  }

  #connect(): Promise<Socket> {
    if (this.#conn) return this.#conn.ready;
    const socket = createConnection(this.#path);
    const splitter = new LineSplitter();
    const ready = new Promise<Socket>((resolve, reject) => {
      socket.once("connect", () => resolve(socket));
      socket.on("error", (err: NodeJS.ErrnoException) => {
        const failure = this.#describe(err);
        reject(failure);
        this.#drop(socket, failure);
      });
    });
    socket.on("data", (chunk: Buffer) => {
      for (const line of splitter.push(chunk)) this.#onLine(line);
    });
    socket.on("close", () => this.#drop(socket, new Error(`the host bridge at ${this.#path} closed the connection before answering`)));
    this.#conn = { socket, ready };
    return ready;
  }

  /** Forget a dead connection (if it is still the current one) and fail the requests that waited on it. */
  #drop(socket: Socket, failure: Error): void {
    if (this.#conn?.socket !== socket) return;
    this.#conn = undefined;
    this.#failAll(failure);
  }

  #failAll(failure: Error): void {
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) p.reject(failure);
  }

  #describe(err: NodeJS.ErrnoException): Error {
    const cause = err.code ?? err.message;
    if (err.code === "ENOENT" || err.code === "ECONNREFUSED") {
      return new Error(`the Aegis host bridge at ${this.#path} is not available (${cause})\nhint: this guest's harness does not serve MCP requests; run aegis-mcp-guest inside an Aegis instance, or set AEGIS_MCP_BRIDGE`);
    }
    return new Error(`the Aegis host bridge at ${this.#path} failed (${cause})`);
  }

  #onLine(line: string): void {
    const msg = parseMessage(line);
    if (isParseFailure(msg)) {
      this.#failAll(new Error(`the host bridge sent an unreadable line: ${msg.message}`));
      return;
    }
    if (typeof msg.id !== "number") return; // Not an answer to us (notifications are not part of the bridge).
    const pending = this.#pending.get(msg.id);
    if (!pending) return; // A late answer to a request that already failed with its connection.
    this.#pending.delete(msg.id);
    if (msg.error) pending.reject(new BridgeRefusal(msg.error.code, msg.error.message, msg.error.data));
    else pending.resolve(msg.result);
  }
}

/**
 * A stand-in for the harness end of the MCP bridge: a unix socket that
 * speaks NDJSON JSON-RPC, records every request and answers from a table of
 * handlers. A handler that throws {@link HostRefusal} answers with that
 * JSON-RPC error; one that returns {@link DROP} closes the connection
 * without answering. Methods without a handler get "method not found".
 *
 * {@link sampleHandlers} plays a well-behaved host, and checks itself
 * against the contract the daemon serves (`McpBridgeMethods` in
 * api/schema/mcp.ts): params the guest sends are parsed with the method's
 * params schema (refused with -32602, as the daemon refuses them), and every
 * answer with its result schema before it is sent, so the stand-in cannot
 * drift from the real host. Tests that play a broken or hostile host install
 * their own handlers. The real host is driven end to end by test/e2e/mcp.test.ts.
 */
import type { Socket, UnixSocketListener } from "bun";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { errorResponse, isParseFailure, LineSplitter, parseMessage, response } from "../../../../src/api/jsonrpc.ts";
import { McpBridgeErrorCode, type McpBridgeMethod, McpBridgeMethods } from "../../../../src/api/schema/mcp.ts";

/** Thrown by a handler to answer with a JSON-RPC error. */
export class HostRefusal extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
  }
}

/** Returned by a handler to close the connection instead of answering. */
export const DROP = Symbol("drop");

/** A handler for one method. */
export type Handler = (params: unknown) => unknown | Promise<unknown>;

/** One request the fake host received. */
export interface Received {
  id: unknown;
  method: string;
  params: unknown;
}

type Conn = Socket<{ splitter: LineSplitter }>;

/** The fake bridge host; `await using` it so the socket and its directory are removed. */
export class FakeHost {
  readonly received: Received[] = [];
  readonly handlers: Record<string, Handler>;
  readonly path: string;
  connections = 0;
  readonly #dir: string;
  readonly #listener: UnixSocketListener<{ splitter: LineSplitter }>;

  constructor(handlers: Record<string, Handler> = {}) {
    this.handlers = handlers;
    this.#dir = mkdtempSync(join(tmpdir(), "aegis-mcp-host-"));
    this.path = join(this.#dir, "bridge.sock");
    this.#listener = Bun.listen<{ splitter: LineSplitter }>({
      unix: this.path,
      socket: {
        open: (socket) => {
          this.connections++;
          socket.data = { splitter: new LineSplitter() };
        },
        data: (socket, chunk) => {
          for (const line of socket.data.splitter.push(chunk)) void this.#answer(socket, line);
        },
      },
    });
  }

  /** The methods received, in order. */
  get methods(): string[] {
    return this.received.map((r) => r.method);
  }

  async #answer(socket: Conn, line: string): Promise<void> {
    const msg = parseMessage(line);
    if (isParseFailure(msg)) throw new Error(`fake host got an unreadable line: ${line}`);
    const id = msg.id ?? null;
    this.received.push({ id, method: msg.method ?? "", params: msg.params });
    const handler = this.handlers[msg.method ?? ""];
    if (!handler) {
      socket.write(errorResponse(id, { code: -32601, message: `method not found: ${msg.method}` }));
      return;
    }
    try {
      const result = await handler(msg.params);
      if (result === DROP) socket.end();
      else socket.write(response(id, result));
    } catch (err) {
      if (!(err instanceof HostRefusal)) throw err;
      socket.write(errorResponse(id, { code: err.code, message: err.message, ...(err.data === undefined ? {} : { data: err.data }) }));
    }
  }

  /** Stop listening and remove the socket directory. */
  stop(): void {
    this.#listener.stop(true);
    rmSync(this.#dir, { recursive: true, force: true });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.stop();
  }
}

/** A valid child as the host reports it. */
export const sampleChild = {
  id: "inst-child1",
  handle: "helper",
  state: "running",
  image: "docker.io/library/busybox:latest",
  command: ["httpd", "-f", "-p", "8080"],
  expose: [{ guest_port: 8080, public_port: null, url: "http://helper.localhost:8099/" }],
  memory_mb: 256,
  vcpus: 1,
  secrets: [],
  created_at: "2026-02-22T00:00:00.000Z",
};

/** Wrap a handler so its params and its answer are checked against the bridge contract. */
function checked(method: McpBridgeMethod, handler: Handler): Handler {
  const { params, result } = McpBridgeMethods[method];
  return async (raw) => {
    const p = params.safeParse(raw ?? {});
    if (!p.success) throw new HostRefusal(McpBridgeErrorCode.invalidParams, `invalid params for ${method}: ${p.error.issues[0]?.message}`, { code: "invalid_request" });
    const answer = await handler(p.data);
    // A drifted sample answer throws here (not a HostRefusal), failing the test that used it.
    return result.parse(answer);
  };
}

/** Valid answers for every bridge method, as a well-behaved host gives them (checked, see the module doc). */
export function sampleHandlers(): Record<string, Handler> {
  const raw: Record<McpBridgeMethod, Handler> = {
    "mcp.self_info": () => ({
      id: "inst-parent",
      handle: "agent",
      image: "docker.io/library/python:3.12-alpine",
      parent_id: null,
      depth: 0,
      expose: [],
      children: 1,
      capabilities: { spawn: true, max_depth: 1, max_children: 2, allowed_images: ["busybox"], max_memory_mb: 512, max_vcpus: 1, allowed_secrets: [], max_exposed_ports: 2 },
      keepalive_until: null,
    }),
    "mcp.instance_spawn": () => sampleChild,
    "mcp.instance_list": () => ({ instances: [sampleChild] }),
    "mcp.instance_stop": (p) => ({ id: sampleChild.id, handle: sampleChild.handle, deleted: (p as { delete?: boolean }).delete === true }),
    "mcp.expose_port": (p) => ({ guest_port: (p as { port: number }).port, public_port: null, url: "http://agent.localhost:8099/" }),
    "mcp.unexpose_port": () => ({ ok: true }),
    "mcp.keepalive_acquire": () => ({ until: "2026-02-22T00:10:00.000Z" }),
    "mcp.keepalive_release": () => ({ ok: true }),
  };
  return Object.fromEntries(Object.entries(raw).map(([m, h]) => [m, checked(m as McpBridgeMethod, h)]));
}

/**
 * @module daemon/e2b/connect
 * The Connect protocol (connectrpc.com/docs/protocol) as envd's clients speak
 * it: the JSON codec over HTTP/1.1, unary calls (`application/json` body in,
 * JSON out, errors as `{code, message}` with the code's HTTP status) and
 * server-streaming calls (`application/connect+json`: every message is an
 * envelope of one flags byte and a big-endian 32-bit length, and the stream
 * ends with an envelope flagged 0x02 carrying `{}` or `{error}`).
 *
 * Written from the protocol specification; the messages themselves are our
 * zod schemas (envd-schema.ts). `Connect-Timeout-Ms` bounds a stream (it then
 * ends with `deadline_exceeded`), and `Keepalive-Ping-Interval` (seconds, the
 * e2b SDK sends 50) makes the server send a keepalive message that often, so
 * idle streams survive proxies.
 */
import type { z } from "zod";
import { formatIssues } from "../../api/issues.ts";

/** Connect error codes (the gRPC set) and the HTTP status a unary error carries. */
export const CONNECT_STATUS = {
  canceled: 499,
  unknown: 500,
  invalid_argument: 400,
  deadline_exceeded: 504,
  not_found: 404,
  already_exists: 409,
  permission_denied: 403,
  resource_exhausted: 429,
  failed_precondition: 400,
  aborted: 409,
  out_of_range: 400,
  unimplemented: 501,
  internal: 500,
  unavailable: 503,
  data_loss: 500,
  unauthenticated: 401,
} as const;

/** A Connect error code. */
export type ConnectCode = keyof typeof CONNECT_STATUS;

/** An error a handler throws to answer with a Connect error. */
export class ConnectError extends Error {
  constructor(
    readonly code: ConnectCode,
    message: string,
  ) {
    super(message);
    this.name = "ConnectError";
  }
}

/** Bytes a stream may have queued for a client that does not read before the stream is ended (`resource_exhausted`). */
export const MAX_QUEUED_STREAM_BYTES = 64 * 1024 * 1024;

/** Largest request message accepted (envd's requests are small: paths, commands, stdin chunks). */
export const MAX_REQUEST_MESSAGE_BYTES = 4 * 1024 * 1024;

/** Flag of the envelope that ends a stream. */
export const END_STREAM = 0x02;
const COMPRESSED = 0x01;

/** One enveloped message. */
export function envelope(flags: number, json: unknown): Uint8Array {
  const body = Buffer.from(JSON.stringify(json));
  const out = Buffer.alloc(5 + body.length);
  out[0] = flags;
  out.writeUInt32BE(body.length, 1);
  body.copy(out, 5);
  return out;
}

/** The JSON of the single enveloped message of a server-streaming request body. */
export function parseEnvelopedRequest(body: Uint8Array): unknown {
  if (body.length < 5) throw new ConnectError("invalid_argument", `request body of ${body.length} bytes is shorter than one Connect envelope (5 bytes)`);
  const flags = body[0]!;
  if (flags & COMPRESSED) throw new ConnectError("unimplemented", "compressed request messages are not supported (send Connect-Content-Encoding: identity)");
  const len = Buffer.from(body.buffer, body.byteOffset, body.length).readUInt32BE(1);
  if (len !== body.length - 5) throw new ConnectError("invalid_argument", `Connect envelope says ${len} bytes but ${body.length - 5} follow`);
  return parseJson(Buffer.from(body.subarray(5)).toString("utf8"));
}

function parseJson(text: string): unknown {
  if (text.length === 0) return {};
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ConnectError("invalid_argument", `malformed JSON message: ${(err as Error).message}`);
  }
}

/** Validate a request message with its schema; failures are `invalid_argument` naming the field. */
export function parseMessage<S extends z.ZodType>(schema: S, value: unknown, what: string): z.infer<S> {
  const r = schema.safeParse(value);
  if (!r.success) throw new ConnectError("invalid_argument", `invalid ${what}: ${formatIssues(r.error.issues)}`);
  return r.data;
}

/** Read a request body, refusing one larger than {@link MAX_REQUEST_MESSAGE_BYTES}. */
export async function readBody(req: Request): Promise<Uint8Array> {
  const declared = Number(req.headers.get("content-length") ?? "0");
  if (declared > MAX_REQUEST_MESSAGE_BYTES + 5) throw new ConnectError("resource_exhausted", `request message of ${declared} bytes exceeds ${MAX_REQUEST_MESSAGE_BYTES}`);
  const buf = new Uint8Array(await req.arrayBuffer());
  if (buf.length > MAX_REQUEST_MESSAGE_BYTES + 5) throw new ConnectError("resource_exhausted", `request message of ${buf.length} bytes exceeds ${MAX_REQUEST_MESSAGE_BYTES}`);
  return buf;
}

/** The JSON error body of a failed call. */
export function errorJson(err: unknown): { code: ConnectCode; message: string } {
  if (err instanceof ConnectError) return { code: err.code, message: err.message };
  const e = err as { code?: string; message?: string };
  // Our AppErrors (from the instance and file services) keep their meaning.
  const byApp: Record<string, ConnectCode> = {
    not_found: "not_found",
    conflict: "already_exists",
    invalid_request: "invalid_argument",
    precondition_failed: "failed_precondition",
    backend_error: "unavailable",
  };
  const code = (e.code && byApp[e.code]) || "internal";
  return { code, message: e.message ?? String(err) };
}

/** A unary response (or its error). */
export async function unary(req: Request, handle: (msg: unknown) => Promise<unknown>): Promise<Response> {
  try {
    const type = req.headers.get("content-type") ?? "";
    if (!type.startsWith("application/json")) throw new ConnectError("unimplemented", `content type "${type}" is not supported; use the JSON codec (application/json)`);
    const msg = parseJson(Buffer.from(await readBody(req)).toString("utf8"));
    return Response.json((await handle(msg)) ?? {});
  } catch (err) {
    const body = errorJson(err);
    return Response.json(body, { status: CONNECT_STATUS[body.code] });
  }
}

/** What a streaming handler gets. */
export interface StreamSink {
  /** Send one message; resolves when it was queued. */
  send(msg: unknown): void;
  /** Aborted when the client goes away or the deadline passes. */
  signal: AbortSignal;
}

/**
 * A server-streaming response. `run` sends messages through the sink and
 * resolves when the stream is complete (or throws the error to end it with).
 * `keepalive` is the message sent every `Keepalive-Ping-Interval` seconds.
 */
export async function serverStream(req: Request, keepalive: unknown, run: (msg: unknown, sink: StreamSink) => Promise<void>): Promise<Response> {
  const headers = { "content-type": "application/connect+json" };
  const type = req.headers.get("content-type") ?? "";
  let msg: unknown;
  try {
    if (!type.startsWith("application/connect+json")) throw new ConnectError("unimplemented", `content type "${type}" is not supported; use application/connect+json`);
    msg = parseEnvelopedRequest(await readBody(req));
  } catch (err) {
    return new Response(envelope(END_STREAM, { error: errorJson(err) }), { headers });
  }
  const abort = new AbortController();
  req.signal.addEventListener("abort", () => abort.abort(), { once: true });
  const timeoutMs = Number(req.headers.get("connect-timeout-ms") ?? "0");
  const pingS = Number(req.headers.get("keepalive-ping-interval") ?? "0");
  let closed = false;
  const body = new ReadableStream<Uint8Array>({
    start: (controller) => {
      const send = (m: unknown) => {
        if (closed) return;
        controller.enqueue(envelope(0, m));
        // A client that stops reading must not make aegisd hold a process's output without bound.
        if ((controller.desiredSize ?? 0) < -MAX_QUEUED_STREAM_BYTES) finish(new ConnectError("resource_exhausted", `the client read too slowly: more than ${MAX_QUEUED_STREAM_BYTES} bytes were queued`));
      };
      const finish = (err?: unknown) => {
        if (closed) return;
        closed = true;
        clearTimeout(deadline);
        clearInterval(ping);
        controller.enqueue(envelope(END_STREAM, err === undefined ? {} : { error: errorJson(err) }));
        controller.close();
        abort.abort();
      };
      const deadline = timeoutMs > 0 ? setTimeout(() => finish(new ConnectError("deadline_exceeded", `the call ran past its ${timeoutMs} ms deadline`)), timeoutMs) : undefined;
      const ping = pingS > 0 && Number.isFinite(pingS) ? setInterval(() => send(keepalive), Math.max(1, pingS) * 1000) : undefined;
      abort.signal.addEventListener("abort", () => {
        if (closed) return;
        closed = true;
        clearTimeout(deadline);
        clearInterval(ping);
      });
      run(msg, { send, signal: abort.signal }).then(
        () => finish(),
        (err: unknown) => finish(err),
      );
    },
    cancel: () => abort.abort(),
  }, { highWaterMark: 1024 * 1024, size: (chunk) => chunk?.byteLength ?? 0 });
  return new Response(body, { headers });
}

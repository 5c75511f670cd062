/**
 * @module shim/ttrpc
 * ttrpc, containerd's small RPC protocol, over a Unix socket: both the
 * server containerd calls (the task service) and the client the shim uses
 * to publish events. No npm package implements ttrpc, so this is ours.
 *
 * Wire format (containerd/ttrpc channel.go): every message is a 10-byte
 * header — payload length (u32 big-endian), stream id (u32 BE), message type
 * (u8: 1 request, 2 response), flags (u8) — then the payload, a protobuf
 * `Request` {service, method, payload, timeout_nano, metadata} or `Response`
 * {status: google.rpc.Status, payload}. Clients use odd stream ids, one per
 * call. Payloads are capped at 4 MiB as in ttrpc (`messageLengthMax`); a
 * peer that sends more is disconnected.
 *
 * Every request is served concurrently: `Wait` blocks until a process
 * exits while `Kill`, `State` and the rest go on over the same connection.
 */
import { decode, encode, type Msg } from "./proto/index.ts";

/** ttrpc's limit on one message's payload. */
export const MAX_MESSAGE = 4 << 20;
const HEADER = 10;
/** Message types. */
export const MessageType = { request: 1, response: 2 } as const;

/** gRPC status codes containerd maps back to its errdefs. */
export const Code = { ok: 0, cancelled: 1, unknown: 2, invalidArgument: 3, deadlineExceeded: 4, notFound: 5, alreadyExists: 6, failedPrecondition: 9, unimplemented: 12, internal: 13, unavailable: 14 } as const;

/** An error answered to the caller with a gRPC status code. */
export class TtrpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
    this.name = "TtrpcError";
  }
}

/** One frame. */
export interface Frame {
  streamId: number;
  type: number;
  flags: number;
  payload: Uint8Array;
}

/** Encode one frame (throws past MAX_MESSAGE). */
export function encodeFrame(f: Frame): Uint8Array {
  if (f.payload.length > MAX_MESSAGE) throw new TtrpcError(Code.internal, `ttrpc message of ${f.payload.length} bytes exceeds the ${MAX_MESSAGE}-byte limit`);
  const out = new Uint8Array(HEADER + f.payload.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, f.payload.length);
  v.setUint32(4, f.streamId);
  v.setUint8(8, f.type);
  v.setUint8(9, f.flags);
  out.set(f.payload, HEADER);
  return out;
}

/** Accumulates bytes from a stream and yields whole frames. */
export class FrameDecoder {
  private buf = new Uint8Array(0);

  /** Add `chunk`; returns the complete frames (throws on an oversized frame). */
  push(chunk: Uint8Array): Frame[] {
    const joined = new Uint8Array(this.buf.length + chunk.length);
    joined.set(this.buf);
    joined.set(chunk, this.buf.length);
    const frames: Frame[] = [];
    let off = 0;
    while (joined.length - off >= HEADER) {
      const v = new DataView(joined.buffer, joined.byteOffset + off, HEADER);
      const len = v.getUint32(0);
      if (len > MAX_MESSAGE) throw new TtrpcError(Code.internal, `ttrpc frame announces ${len} bytes, over the ${MAX_MESSAGE}-byte limit`);
      if (joined.length - off < HEADER + len) break;
      frames.push({ streamId: v.getUint32(4), type: v.getUint8(8), flags: v.getUint8(9), payload: joined.slice(off + HEADER, off + HEADER + len) });
      off += HEADER + len;
    }
    this.buf = joined.slice(off);
    return frames;
  }
}

/** A method handler: decoded request in, response message out (or a thrown TtrpcError). */
export interface Method {
  request: string;
  response: string;
  handle(req: Msg, metadata: Map<string, string>): Promise<Msg>;
}

/** Services by name, each a map of method name -> handler. */
export type Services = Map<string, Map<string, Method>>;

type Sock = Bun.Socket<{ decoder: FrameDecoder }>;

function errorStatus(err: unknown): Msg {
  if (err instanceof TtrpcError) return { code: err.code, message: err.message };
  return { code: Code.unknown, message: err instanceof Error ? err.message : String(err) };
}

async function serveRequest(services: Services, frame: Frame): Promise<Uint8Array> {
  let response: Msg;
  try {
    const req = decode("ttrpc.Request", frame.payload);
    const method = services.get(String(req.service))?.get(String(req.method));
    if (!method) throw new TtrpcError(Code.unimplemented, `${String(req.service)}/${String(req.method)} is not implemented`);
    const metadata = new Map((req.metadata as Msg[]).map((kv) => [String(kv.key), String(kv.value)]));
    const out = await method.handle(decode(method.request, req.payload as Uint8Array), metadata);
    response = { status: { code: Code.ok }, payload: encode(method.response, out) };
  } catch (err) {
    response = { status: errorStatus(err) };
  }
  return encodeFrame({ streamId: frame.streamId, type: MessageType.response, flags: 0, payload: encode("ttrpc.Response", response) });
}

/** Write all of `bytes` to a Bun socket, waiting for drain as needed. */
function writer() {
  const pending = new Map<Sock, Uint8Array[]>();
  return {
    write(s: Sock, bytes: Uint8Array): void {
      const queue = pending.get(s);
      if (queue) return void queue.push(bytes);
      const n = s.write(bytes);
      if (n < bytes.length) pending.set(s, [bytes.subarray(Math.max(n, 0))]);
    },
    drain(s: Sock): void {
      const queue = pending.get(s);
      while (queue && queue.length > 0) {
        const head = queue[0]!;
        const n = s.write(head);
        if (n < head.length) {
          queue[0] = head.subarray(Math.max(n, 0));
          return;
        }
        queue.shift();
      }
      pending.delete(s);
    },
    forget(s: Sock): void {
      pending.delete(s);
    },
  };
}

/** A listening ttrpc server. */
export interface TtrpcServer {
  /** Stop listening and drop every connection. */
  stop(): void;
  /** Connections currently open. */
  readonly connections: number;
}

/** Serve `services` on the Unix socket `path` (the caller removes a stale socket first). */
export function serve(path: string, services: Services, onError: (err: unknown) => void): TtrpcServer {
  const out = writer();
  const open = new Set<Sock>();
  const listener = Bun.listen<{ decoder: FrameDecoder }>({
    unix: path,
    socket: {
      open(s) {
        s.data = { decoder: new FrameDecoder() };
        open.add(s);
      },
      data(s, chunk) {
        let frames: Frame[];
        try {
          frames = s.data.decoder.push(chunk);
        } catch (err) {
          onError(err);
          s.end();
          return;
        }
        for (const f of frames) {
          if (f.type !== MessageType.request) continue;
          serveRequest(services, f).then(
            (bytes) => out.write(s, bytes),
            (err: unknown) => onError(err),
          );
        }
      },
      drain(s) {
        out.drain(s);
      },
      close(s) {
        open.delete(s);
        out.forget(s);
      },
      error(_s, err) {
        onError(err);
      },
    },
  });
  return {
    stop: () => listener.stop(true),
    get connections() {
      return open.size;
    },
  };
}

/** A ttrpc client on one connection. */
export class TtrpcClient {
  private nextStream = 1;
  private readonly calls = new Map<number, { resolve: (m: Msg) => void; reject: (e: Error) => void; response: string }>();
  private readonly decoder = new FrameDecoder();

  private constructor(private readonly socket: Bun.Socket<undefined>) {}

  /** Connect to the Unix socket `path` (a `unix://` prefix is accepted). */
  static async connect(path: string): Promise<TtrpcClient> {
    let client: TtrpcClient | undefined;
    const pendingData: Uint8Array[] = [];
    const socket = await Bun.connect({
      unix: path.replace(/^unix:\/\//, ""),
      socket: {
        data(_s, chunk) {
          if (client) client.onData(chunk);
          else pendingData.push(chunk);
        },
        close() {
          client?.failAll(new Error(`ttrpc connection to ${path} closed`));
        },
        error(_s, err) {
          client?.failAll(err);
        },
      },
    });
    client = new TtrpcClient(socket);
    for (const c of pendingData) client.onData(c);
    return client;
  }

  /** Call `service/method` with `req`; resolves with the decoded response or rejects with a TtrpcError. */
  call(service: string, method: string, request: string, req: Msg, response: string, metadata: Record<string, string> = {}): Promise<Msg> {
    const streamId = this.nextStream;
    this.nextStream += 2;
    const payload = encode("ttrpc.Request", { service, method, payload: encode(request, req), metadata: Object.entries(metadata).map(([key, value]) => ({ key, value })) });
    return new Promise<Msg>((resolve, reject) => {
      this.calls.set(streamId, { resolve, reject, response });
      this.socket.write(encodeFrame({ streamId, type: MessageType.request, flags: 0, payload }));
    });
  }

  /** Close the connection. */
  close(): void {
    this.socket.end();
  }

  private onData(chunk: Uint8Array): void {
    for (const f of this.decoder.push(chunk)) {
      const call = this.calls.get(f.streamId);
      if (!call || f.type !== MessageType.response) continue;
      this.calls.delete(f.streamId);
      const res = decode("ttrpc.Response", f.payload);
      const status = res.status as Msg | null;
      if (status && Number(status.code) !== Code.ok) call.reject(new TtrpcError(Number(status.code), String(status.message)));
      else call.resolve(decode(call.response, res.payload as Uint8Array));
    }
  }

  private failAll(err: Error): void {
    for (const c of this.calls.values()) c.reject(err);
    this.calls.clear();
  }
}

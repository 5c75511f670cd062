/**
 * A stand-in for the three aegisd endpoints the gateway uses, served on a
 * Unix socket with the shapes the real daemon implements:
 *
 * - `GET /v1/secrets/{name}` -> `{"name","value"}` or 404 `{"error":{...}}`
 * - `POST /v1/instances/{id}/tether` (validated with the shared schema; 400 on
 *   bad frames, 404 on an unknown instance) -> 202 `{"msg_id","seq"}`
 * - `GET /v1/instances/{id}/tether/stream?after_seq=N` -> NDJSON egress frames
 *   with `seq > N` (replay), then live ones
 *
 * Frames share one sequence per instance (ingress and egress alike). The
 * store is a plain object the test can keep across a "restart" (a new server
 * over the same store), like the daemon's persisted TetherStore.
 */
import { rmSync } from "node:fs";
import {
  completeFrame,
  type TetherEgressDraft,
  TetherEgressFrame,
  type TetherFrame,
  TetherIngress,
  type TetherIngressFrame,
} from "../../src/api/schema/tether.ts";

/** The persisted part of the stand-in. */
export interface AegisdStore {
  seq: number;
  frames: TetherFrame[];
}

/** A fresh store. */
export function newStore(): AegisdStore {
  return { seq: 0, frames: [] };
}

/** The stand-in server. */
export class FakeAegisd {
  /** Host -> guest frames accepted, in order. */
  readonly ingress: TetherIngressFrame[] = [];
  /** Called for each accepted host -> guest frame (plays the agent in tests). */
  onIngress: (frame: TetherIngressFrame) => void = () => {};
  /** Number of stream requests served, with their `after_seq`. */
  readonly streamRequests: number[] = [];
  private readonly listeners = new Set<(f: TetherFrame) => void>();
  private readonly server: ReturnType<typeof Bun.serve>;

  constructor(
    readonly socketPath: string,
    readonly instance: string,
    readonly secrets: Record<string, string> = {},
    readonly store: AegisdStore = newStore(),
  ) {
    rmSync(socketPath, { force: true });
    // idleTimeout works on Unix sockets too, but Bun's types only allow it for TCP (the daemon casts the same way).
    this.server = Bun.serve({ unix: socketPath, idleTimeout: 0, fetch: (req: Request) => this.handle(req) } as unknown as Parameters<typeof Bun.serve>[0]);
  }

  /** Publish a guest -> host frame (assigns `seq`, fills `msg_id`/`ts`). */
  emit(draft: TetherEgressDraft): TetherFrame {
    const frame = completeFrame(draft, { seq: ++this.store.seq }) as TetherFrame;
    TetherEgressFrame.parse(frame);
    this.store.frames.push(frame);
    for (const l of this.listeners) l(frame);
    return frame;
  }

  /** Stop serving (open streams are cut). */
  stop(): void {
    this.server.stop(true);
    rmSync(this.socketPath, { force: true });
  }

  private async handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const secret = /^\/v1\/secrets\/([^/]+)$/.exec(url.pathname);
    if (secret && req.method === "GET") {
      const name = decodeURIComponent(secret[1]!);
      const value = this.secrets[name];
      return value === undefined ? errorBody(404, "not_found", `secret '${name}' not found`) : Response.json({ name, value });
    }
    const tether = /^\/v1\/instances\/([^/]+)\/tether(\/stream)?$/.exec(url.pathname);
    if (!tether) return errorBody(404, "not_found", `no route for ${req.method} ${url.pathname}`);
    if (decodeURIComponent(tether[1]!) !== this.instance) return errorBody(404, "not_found", `instance '${tether[1]}' not found`);
    if (tether[2] && req.method === "GET") return this.stream(Number(url.searchParams.get("after_seq") ?? 0), req.signal);
    if (!tether[2] && req.method === "POST") return this.post(req);
    return errorBody(405, "method_not_allowed", `${req.method} not allowed`);
  }

  private async post(req: Request): Promise<Response> {
    let json: unknown;
    try {
      json = await req.json();
    } catch {
      return errorBody(400, "invalid_request", "body is not JSON");
    }
    const parsed = TetherIngress.safeParse(json);
    if (!parsed.success) return errorBody(400, "invalid_request", parsed.error.issues[0]?.message ?? "invalid frame");
    const frame = completeFrame(parsed.data, { seq: ++this.store.seq }) as TetherIngressFrame;
    this.store.frames.push(frame);
    this.ingress.push(frame);
    queueMicrotask(() => this.onIngress(frame));
    return Response.json({ msg_id: frame.msg_id, seq: frame.seq }, { status: 202 });
  }

  private stream(afterSeq: number, signal: AbortSignal): Response {
    this.streamRequests.push(afterSeq);
    const enc = new TextEncoder();
    let listener: ((f: TetherFrame) => void) | undefined;
    const body = new ReadableStream<Uint8Array>({
      start: (ctl) => {
        const isEgress = (f: TetherFrame) => f.type !== "user.message" && f.type !== "control.cancel";
        for (const f of this.store.frames) if (f.seq > afterSeq && isEgress(f)) ctl.enqueue(enc.encode(`${JSON.stringify(f)}\n`));
        listener = (f) => {
          if (isEgress(f)) ctl.enqueue(enc.encode(`${JSON.stringify(f)}\n`));
        };
        this.listeners.add(listener);
        signal.addEventListener("abort", () => listener && this.listeners.delete(listener));
      },
      cancel: () => {
        if (listener) this.listeners.delete(listener);
      },
    });
    return new Response(body, { headers: { "content-type": "application/x-ndjson" } });
  }
}

function errorBody(status: number, code: string, message: string): Response {
  return Response.json({ error: { code, message } }, { status });
}

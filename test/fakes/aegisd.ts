/**
 * A stand-in for the three aegisd endpoints the gateway uses, served on a
 * Unix socket with the shapes the real daemon implements:
 *
 * - `GET /v1/secrets/{name}` -> `{"name","value"}` or 404 `{"error":{...}}`
 * - `POST /v1/instances/{id}/tether` (validated with the shared schema; 400 on
 *   bad frames, 404 on an unknown instance) -> 202 `{"msg_id","seq"}`
 * - `GET /v1/instances/{id}/tether/stream?after_seq=N` -> NDJSON egress frames
 *   with `seq > N` (replay), then live ones; without `after_seq`, the 50
 *   most recent egress frames first, as the daemon does
 *
 * Every reply is parsed with the zod schema the daemon and its clients use
 * (`SecretValue`, `TetherAccepted`, `TetherEgressFrame`, `ErrorEnvelope`,
 * and the query with `TetherStreamQuery`) before it is sent, so this stand-in
 * cannot drift from the real contract without a test failing here. The
 * gateway's e2e test (test/e2e/gateway.test.ts) drives the real aegisd.
 *
 * Frames share one sequence per instance (ingress and egress alike). The
 * store is a plain object the test can keep across a "restart" (a new server
 * over the same store), like the daemon's persisted TetherStore.
 */
import { rmSync } from "node:fs";
import type { z } from "zod";
import { ErrorEnvelope } from "../../src/api/errors.ts";
import { SecretValue } from "../../src/api/schema/secrets.ts";
import {
  completeFrame,
  TetherAccepted,
  type TetherEgressDraft,
  TetherEgressFrame,
  type TetherFrame,
  TetherIngress,
  type TetherIngressFrame,
  TetherStreamQuery,
} from "../../src/api/schema/tether.ts";

/** Frames a stream without `after_seq` replays (the daemon's `recent` default). */
const RECENT_FRAMES = 50;

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
  /** The stream requests served, by their `after_seq` (undefined: none given). */
  readonly streamRequests: (number | undefined)[] = [];
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
      return value === undefined ? errorBody(404, "not_found", `secret '${name}' not found`) : reply(SecretValue, { name, value });
    }
    const tether = /^\/v1\/instances\/([^/]+)\/tether(\/stream)?$/.exec(url.pathname);
    if (!tether) return errorBody(404, "not_found", `no route for ${req.method} ${url.pathname}`);
    if (decodeURIComponent(tether[1]!) !== this.instance) return errorBody(404, "not_found", `instance '${tether[1]}' not found`);
    if (tether[2] && req.method === "GET") {
      const query = TetherStreamQuery.safeParse(Object.fromEntries(url.searchParams));
      if (!query.success) return errorBody(400, "invalid_request", query.error.issues[0]?.message ?? "invalid query");
      return this.stream(query.data.after_seq, req.signal);
    }
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
    return reply(TetherAccepted, { msg_id: frame.msg_id, seq: frame.seq }, 202);
  }

  private stream(afterSeq: number | undefined, signal: AbortSignal): Response {
    this.streamRequests.push(afterSeq);
    const enc = new TextEncoder();
    const line = (f: TetherFrame) => enc.encode(`${JSON.stringify(TetherEgressFrame.parse(f))}\n`);
    let listener: ((f: TetherFrame) => void) | undefined;
    const body = new ReadableStream<Uint8Array>({
      start: (ctl) => {
        const isEgress = (f: TetherFrame) => f.type !== "user.message" && f.type !== "control.cancel";
        const egress = this.store.frames.filter(isEgress);
        const replay = afterSeq === undefined ? egress.slice(-RECENT_FRAMES) : egress.filter((f) => f.seq > afterSeq);
        for (const f of replay) ctl.enqueue(line(f));
        listener = (f) => {
          if (isEgress(f)) ctl.enqueue(line(f));
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

/** A JSON reply, parsed with the contract's schema first (a drifted shape throws here, failing the test). */
function reply<S extends z.ZodType>(schema: S, body: z.input<S>, status = 200): Response {
  return Response.json(schema.parse(body), { status });
}

function errorBody(status: number, code: string, message: string): Response {
  return reply(ErrorEnvelope, { error: { code, message } }, status);
}

/**
 * @module gateway/aegis-client
 * The gateway's view of aegisd: three endpoints on the Unix socket
 * `$AEGIS_HOME/aegisd.sock`.
 *
 * - `GET /v1/secrets/{name}` -> `{"name","value"}` (the bot token)
 * - `POST /v1/instances/{id}/tether` with a host -> guest frame -> 202 `{"msg_id","seq"}`
 * - `GET /v1/instances/{id}/tether/stream?after_seq=N` -> NDJSON, one complete
 *   frame per line, every frame with `seq > N` (replay), then live frames;
 *   blank lines are heartbeats.
 *
 * Kept behind {@link AegisTetherClient} so tests can point the gateway at a
 * stand-in server.
 */
import { SecretValue } from "../api/schema/secrets.ts";
import { TetherAccepted, TetherFrame, type TetherIngress } from "../api/schema/tether.ts";

/** What the gateway needs from aegisd. */
export interface AegisTetherClient {
  /** The decrypted value of a workspace secret. */
  resolveSecret(name: string): Promise<string>;
  /** Send a host -> guest frame to the instance (wakes it). */
  postFrame(frame: TetherIngress): Promise<TetherAccepted>;
  /** Frames after `afterSeq`, replayed then live, until the stream ends or `signal` aborts. */
  stream(afterSeq: number, signal: AbortSignal): AsyncIterable<TetherFrame>;
}

/** A non-2xx answer from aegisd, carrying its error envelope. */
export class AegisApiError extends Error {
  override readonly name = "AegisApiError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
  /** Worth retrying: the daemon or the instance is temporarily unable. */
  get transient(): boolean {
    return this.status >= 500 || this.status === 408 || this.status === 429;
  }
}

async function apiError(what: string, res: Response): Promise<AegisApiError> {
  const text = await res.text();
  let code = `http_${res.status}`;
  let message = text.trim().slice(0, 300);
  try {
    const env = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    if (typeof env.error?.code === "string") code = env.error.code;
    if (typeof env.error?.message === "string") message = env.error.message;
  } catch (err) {
    if (!(err instanceof SyntaxError)) throw err;
  }
  return new AegisApiError(res.status, code, `${what}: aegisd answered ${res.status} ${code}: ${message}`);
}

/** Yield the lines of a byte stream (UTF-8, `\n`-terminated; a final unterminated line included). */
export async function* ndjsonLines(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buf = "";
  for await (const chunk of body) {
    buf += decoder.decode(chunk, { stream: true });
    let nl = buf.indexOf("\n");
    while (nl !== -1) {
      yield buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      nl = buf.indexOf("\n");
    }
  }
  buf += decoder.decode();
  if (buf.length > 0) yield buf;
}

/** Options of {@link UnixTetherClient}. */
export interface UnixTetherClientOptions {
  socketPath: string;
  instance: string;
  /** Told about stream lines that are not frames (skipped). */
  onBadLine?: (reason: string) => void;
}

/** The real client: HTTP over aegisd's Unix socket. */
export class UnixTetherClient implements AegisTetherClient {
  constructor(private readonly opts: UnixTetherClientOptions) {}

  private url(path: string): string {
    return `http://aegis${path}`;
  }

  private get instancePath(): string {
    return `/v1/instances/${encodeURIComponent(this.opts.instance)}/tether`;
  }

  async resolveSecret(name: string): Promise<string> {
    const res = await fetch(this.url(`/v1/secrets/${encodeURIComponent(name)}`), { unix: this.opts.socketPath });
    if (!res.ok) throw await apiError(`resolving secret '${name}'`, res);
    return SecretValue.parse(await res.json()).value;
  }

  async postFrame(frame: TetherIngress): Promise<TetherAccepted> {
    const res = await fetch(this.url(this.instancePath), {
      unix: this.opts.socketPath,
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(frame),
    });
    if (res.status !== 202 && !res.ok) throw await apiError(`sending a frame to instance '${this.opts.instance}'`, res);
    return TetherAccepted.parse(await res.json());
  }

  async *stream(afterSeq: number, signal: AbortSignal): AsyncIterable<TetherFrame> {
    const res = await fetch(this.url(`${this.instancePath}/stream?after_seq=${afterSeq}`), { unix: this.opts.socketPath, signal });
    if (!res.ok) throw await apiError(`following the tether stream of instance '${this.opts.instance}'`, res);
    if (!res.body) return;
    for await (const line of ndjsonLines(res.body)) {
      if (line.trim() === "") continue;
      const frame = parseFrameLine(line);
      if (typeof frame === "string") this.opts.onBadLine?.(frame);
      else yield frame;
    }
  }
}

/** Parse one stream line into a frame, or a reason why it is not one. */
export function parseFrameLine(line: string): TetherFrame | string {
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch (err) {
    return `not JSON (${(err as Error).message})`;
  }
  const parsed = TetherFrame.safeParse(json);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  return `not a tether frame (${issue ? `${issue.path.join(".") || "frame"}: ${issue.message}` : "invalid"})`;
}

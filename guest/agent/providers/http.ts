/**
 * @module guest/agent/providers/http
 * The HTTP half of both providers: POST a JSON body, turn a non-2xx answer
 * into a typed {@link ProviderError}, and read the SSE body event by event
 * with two timeouts (until the response headers arrive, and between body
 * chunks), so a silent or half-open connection ends in an error, never a hang.
 */
import { SseParser, type SseEvent } from "../sse.ts";
import { CancelledError, ProviderError } from "./types.ts";

/** What to send and how long to wait. */
export interface SseRequest {
  /** "OpenAI" or "Anthropic", used in error messages. */
  label: string;
  url: string;
  headers: Record<string, string>;
  body: unknown;
  signal: AbortSignal;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
}

/** Parse `retry-after-ms` / `retry-after` (seconds or an HTTP date) into milliseconds. */
export function retryAfterMs(headers: Headers, now = Date.now()): number | undefined {
  const ms = headers.get("retry-after-ms");
  if (ms !== null && /^\d+(\.\d+)?$/.test(ms.trim())) return Math.round(Number(ms));
  const ra = headers.get("retry-after");
  if (ra === null) return undefined;
  if (/^\d+(\.\d+)?$/.test(ra.trim())) return Math.round(Number(ra) * 1000);
  const at = Date.parse(ra);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** The human part of a provider's JSON error body (both vendors nest it under `error.message`). */
function errorDetail(bodyText: string): string {
  try {
    const j = JSON.parse(bodyText) as { error?: { message?: unknown } | string; message?: unknown };
    if (typeof j.error === "object" && j.error && typeof j.error.message === "string") return j.error.message;
    if (typeof j.error === "string") return j.error;
    if (typeof j.message === "string") return j.message;
  } catch (err) {
    if (!(err instanceof SyntaxError)) throw err;
  }
  return bodyText.trim().slice(0, 300) || "(empty body)";
}

/** Map a non-2xx response to a ProviderError. */
export function httpError(label: string, status: number, headers: Headers, bodyText: string): ProviderError {
  const detail = errorDetail(bodyText);
  if (status === 401 || status === 403) {
    return new ProviderError("unauthorized", `${label} API rejected the API key (HTTP ${status}): ${detail}`, false, undefined, status);
  }
  if (status === 429) {
    return new ProviderError("rate_limited", `${label} API rate limit (HTTP 429): ${detail}`, true, retryAfterMs(headers), status);
  }
  if (status >= 500) {
    return new ProviderError("upstream_error", `${label} API failed (HTTP ${status}): ${detail}`, true, retryAfterMs(headers), status);
  }
  if (status === 408) return new ProviderError("timeout", `${label} API timed out (HTTP 408): ${detail}`, true, undefined, status);
  return new ProviderError("bad_request", `${label} API refused the request (HTTP ${status}): ${detail}`, false, undefined, status);
}

/**
 * POST the request and yield its SSE events. The generator's return value
 * says whether the body ended inside an unterminated event.
 */
export async function* postSse(req: SseRequest): AsyncGenerator<SseEvent, { truncated: boolean }> {
  if (req.signal.aborted) throw new CancelledError();
  const ctl = new AbortController();
  let timedOut: string | undefined;
  const onAbort = () => ctl.abort();
  req.signal.addEventListener("abort", onAbort, { once: true });
  const expire = (what: string) => {
    timedOut = what;
    ctl.abort();
  };
  let timer = setTimeout(() => expire(`no response from ${req.label} API within ${req.connectTimeoutMs} ms`), req.connectTimeoutMs);
  const fail = (err: unknown, during: "connect" | "read"): Error => {
    if (req.signal.aborted) return new CancelledError();
    if (timedOut !== undefined) return new ProviderError("timeout", timedOut, true);
    if (err instanceof ProviderError) return err;
    const msg = err instanceof Error ? err.message : String(err);
    return during === "connect"
      ? new ProviderError("network_error", `could not reach ${req.label} API at ${new URL(req.url).origin}: ${msg}`, true)
      : new ProviderError("stream_interrupted", `${req.label} stream broke: ${msg}`, true);
  };
  try {
    let res: Response;
    try {
      res = await fetch(req.url, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "text/event-stream", ...req.headers },
        body: JSON.stringify(req.body),
        signal: ctl.signal,
        // A fresh connection per request: after the VM is restored from a
        // snapshot, a pooled connection is dead on the host side (the new
        // QEMU's user network has no state for it), and reusing it cost
        // ~600 ms of the first answer after every wake. Connecting is cheap.
        keepalive: false,
      });
      if (!res.ok) throw httpError(req.label, res.status, res.headers, await res.text());
    } catch (err) {
      throw fail(err, "connect");
    }
    if (!res.body) throw new ProviderError("stream_interrupted", `${req.label} API answered without a body`, true);
    clearTimeout(timer);
    const reader = res.body.getReader();
    const parser = new SseParser();
    const aborted = new Promise<never>((_, reject) => ctl.signal.addEventListener("abort", () => reject(new Error("aborted")), { once: true }));
    aborted.catch(() => undefined); // Observed through Promise.race below; this only marks it handled.
    try {
      for (;;) {
        timer = setTimeout(() => expire(`${req.label} stream was silent for ${req.idleTimeoutMs} ms`), req.idleTimeoutMs);
        let chunk: Awaited<ReturnType<typeof reader.read>>;
        try {
          chunk = await Promise.race([reader.read(), aborted]);
        } catch (err) {
          throw fail(err, "read");
        }
        clearTimeout(timer);
        if (chunk.done) return parser.end();
        for (const ev of parser.push(chunk.value)) yield ev;
      }
    } finally {
      // Releases the connection when the consumer stops early. A rejection here
      // only means the body had already failed, which was reported above.
      reader.cancel().catch(() => undefined);
    }
  } finally {
    clearTimeout(timer);
    req.signal.removeEventListener("abort", onAbort);
  }
}

/**
 * @module daemon/router/http-proxy
 * Plain HTTP requests through the router: wake the target, forward with
 * Bun's `fetch` (request body streamed with `duplex: "half"`, response body
 * streamed back chunk by chunk, no decompression, no redirect following), and
 * keep the activity open until the response body has been fully sent or the
 * client went away. Responses on the shared router origin (path prefix or
 * default route) are sandboxed into an opaque origin (origin-isolation.ts).
 */
import type { ResolvedRoute } from "./resolve.ts";
import { wakeForRequest } from "./wake.ts";
import type { EndActivity } from "./activity.ts";
import { upstreamRequestHeaders, downstreamResponseHeaders } from "./headers.ts";
import { isolateSharedOrigin } from "./origin-isolation.ts";
import { causeOf, errorResponse, upstreamFailed } from "./responses.ts";
import type { RouterHooks, RouterLog } from "./types.ts";

/** What a proxy needs from the router. */
export interface ProxyContext {
  hooks: RouterHooks;
  log: RouterLog;
}

/** Responses up to this size (by Content-Length) are read whole; larger ones stream. */
const SMALL_BODY = 64 * 1024;

/** Statuses that never carry a body. */
const NO_BODY_STATUS = new Set([101, 204, 205, 304]);

/** Methods safe to send twice when a pooled upstream connection turned out to be dead. */
const RETRYABLE = new Set(["GET", "HEAD", "OPTIONS"]);

/** Bracket an IPv6 literal for a URL authority. */
export function authority(host: string, port: number): string {
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/** Proxy one non-upgrade request to the route's instance. Never rejects. */
export async function proxyHttp(req: Request, route: ResolvedRoute, clientIp: string | undefined, ctx: ProxyContext): Promise<Response> {
  const { instance } = route;
  const woken = await wakeForRequest(instance, ctx);
  if (woken instanceof Response) return woken;
  const { addr, end, target, what } = woken;
  const url = `http://${authority(addr.host, addr.port)}${route.path}`;
  const init = {
    method: req.method,
    headers: upstreamRequestHeaders(req.headers, { clientIp, host: req.headers.get("host"), prefix: route.prefix }),
    body: req.body,
    duplex: "half",
    redirect: "manual",
    decompress: false,
    timeout: false,
    signal: req.signal,
  } satisfies BunFetchRequestInit;
  let res: Response;
  try {
    res = await fetch(url, init);
  } catch (first) {
    if (req.signal.aborted || req.body !== null || !RETRYABLE.has(req.method)) return failed(first);
    // A keep-alive connection the guest closed just as it was reused: retry once on a fresh one.
    ctx.log("router: retrying idempotent request after upstream error", { instanceId: instance.instanceId, method: req.method, error: causeOf(first) });
    try {
      res = await fetch(url, init);
    } catch (second) {
      return failed(second);
    }
  }
  const headers = downstreamResponseHeaders(res.headers);
  // Instances reached on the router's own origin must not share it in the browser (origin-isolation.ts).
  if (route.rule !== "host") isolateSharedOrigin(headers, route.prefix);
  const init2 = { status: res.status, statusText: res.statusText, headers };
  if (res.body === null || req.method === "HEAD" || NO_BODY_STATUS.has(res.status)) {
    // Bun keeps a handler-set Content-Length on a null body, which is what HEAD needs.
    if (res.body) await res.body.cancel();
    end();
    return new Response(null, init2);
  }
  const length = Number(res.headers.get("content-length") ?? Number.NaN);
  if (length <= SMALL_BODY) {
    // Bun.serve replaces the Content-Length of a streamed body with chunked framing
    // (oven-sh/bun#10507); a small body is read whole so its length reaches the client.
    try {
      const body = await res.arrayBuffer();
      return new Response(body, init2);
    } catch (err) {
      return failed(err);
    } finally {
      end();
    }
  }
  return new Response(trackedBody(res.body, end, (err) => ctx.log("router: upstream response broke mid-body", { instanceId: instance.instanceId, url: route.path, error: causeOf(err) })), {
    status: res.status,
    statusText: res.statusText,
    headers,
  });

  function failed(err: unknown): Response {
    end();
    if (req.signal.aborted) return new Response(null, { status: 499 }); // nobody is listening any more
    ctx.log("router: upstream request failed", { instanceId: instance.instanceId, guestPort: instance.guestPort, upstream: url, error: causeOf(err) });
    return errorResponse(upstreamFailed(what, target, addr, err));
  }
}

/**
 * Re-stream `src` so the end of the activity is known: the body finished,
 * failed (the client sees a truncated response) or was cancelled by a client
 * that went away (the upstream request is then cancelled too).
 */
export function trackedBody(src: ReadableStream<Uint8Array>, end: EndActivity, onError: (err: unknown) => void): ReadableStream<Uint8Array> {
  const reader = src.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let chunk: Awaited<ReturnType<typeof reader.read>>;
      try {
        chunk = await reader.read();
      } catch (err) {
        end();
        onError(err);
        controller.error(err);
        return;
      }
      if (chunk.done) {
        end();
        controller.close();
      } else {
        controller.enqueue(chunk.value);
      }
    },
    cancel(reason) {
      end();
      return reader.cancel(reason).catch(onError);
    },
  });
}

/**
 * @module daemon/router/ws-proxy
 * WebSocket upgrades through the router. The upstream handshake is done first
 * (after the wake), so a guest that refuses the upgrade gives the client a
 * 502 instead of an accepted-then-closed socket, and the subprotocol the
 * guest picked is the one the client is told. Then Bun's server socket and
 * client socket are bridged: text stays text, binary stays binary, close
 * codes and reasons pass through, and each side is paused while the other
 * one's send buffer is full (TCP backpressure end to end).
 */
import type { Server, ServerWebSocket, WebSocketHandler } from "bun";
import { AppError } from "../../api/errors.ts";
import type { EndActivity } from "./activity.ts";
import type { OpenConnections } from "./connections.ts";
import { upstreamWebSocketHeaders } from "./headers.ts";
import { authority, type ProxyContext } from "./http-proxy.ts";
import type { ResolvedRoute } from "./resolve.ts";
import { wakeForRequest } from "./wake.ts";
import { causeOf, errorResponse, upstreamFailed } from "./responses.ts";

/** Pause the client while this many bytes wait to go upstream. */
const UPSTREAM_HIGH_WATER = 1 << 20;
/** Poll interval for the upstream buffer to drain (the client WebSocket API has no drain event). */
const DRAIN_POLL_MS = 5;

/** Per-connection state carried on the server WebSocket. */
export interface WsBridge {
  instanceId: string;
  upstream: WebSocket;
  /** Upstream messages that arrived before the client side opened. */
  early: (string | ArrayBuffer)[];
  end: EndActivity;
  ctx: WsContext;
  client?: ServerWebSocket<WsBridge>;
  /** Unregisters the bridge from the router's open connections. */
  untrack?: () => void;
}

/** What the WebSocket bridge needs from the router. */
export interface WsContext extends ProxyContext {
  connections: OpenConnections;
}

/** True when the request asks for a WebSocket upgrade. */
export function isWebSocketUpgrade(req: Request): boolean {
  return req.headers.get("upgrade")?.toLowerCase() === "websocket";
}

/** Codes a WebSocket endpoint may send in a close frame (1005/1006/1015 are only ever reported). */
function sendable(code: number): boolean {
  return (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999);
}

/** Close `ws` the way its peer closed: same code and reason, or abruptly after an abnormal close. */
function closeLike(ws: { close(code?: number, reason?: string): void; terminate(): void }, code: number, reason: string): void {
  if (code === 1006) ws.terminate();
  else if (sendable(code)) ws.close(code, reason);
  else ws.close();
}

/**
 * Handle an upgrade request: wake, connect upstream, then upgrade the client.
 * Returns undefined once upgraded, or the error response. Never rejects.
 */
export async function proxyWebSocket(req: Request, server: Server<WsBridge>, route: ResolvedRoute, clientIp: string | undefined, ctx: WsContext): Promise<Response | undefined> {
  const { instance } = route;
  const woken = await wakeForRequest(instance, ctx);
  if (woken instanceof Response) return woken;
  const { addr, end, target, what } = woken;
  const protocols = req.headers.get("sec-websocket-protocol")?.split(",").map((p) => p.trim()).filter(Boolean) ?? [];
  const headers = upstreamWebSocketHeaders(req.headers, { clientIp, host: req.headers.get("host"), prefix: route.prefix });
  const upstream = new WebSocket(`ws://${authority(addr.host, addr.port)}${route.path}`, { headers, protocols } as unknown as string[]);
  upstream.binaryType = "arraybuffer";
  const bridge: WsBridge = { instanceId: instance.instanceId, upstream, early: [], end, ctx };
  upstream.onmessage = (e) => bridge.early.push(e.data as string | ArrayBuffer);
  try {
    await opened(upstream, req.signal);
  } catch (err) {
    end();
    if (req.signal.aborted) return new Response(null, { status: 499 });
    ctx.log("router: upstream WebSocket handshake failed", { instanceId: instance.instanceId, guestPort: instance.guestPort, error: causeOf(err) });
    return errorResponse(upstreamFailed(what, target, addr, err));
  }
  const ok = server.upgrade(req, { data: bridge, headers: upstream.protocol ? { "Sec-WebSocket-Protocol": upstream.protocol } : undefined });
  if (!ok) {
    upstream.close(1011, "client upgrade failed");
    end();
    return errorResponse(new AppError("invalid_request", `WebSocket upgrade to ${what} failed: the request is not a valid WebSocket handshake`));
  }
  return undefined;
}

/** Resolve when `ws` opens; reject on error, close or client abort. */
function opened(ws: WebSocket, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      ws.close();
      reject(new Error("client went away during the WebSocket handshake"));
    };
    signal.addEventListener("abort", onAbort, { once: true });
    ws.onopen = () => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    };
    ws.onerror = (e) => reject(new Error(`upstream WebSocket handshake failed: ${(e as ErrorEvent).message || "connection refused or upgrade rejected"}`));
    ws.onclose = (e) => reject(new Error(`upstream closed during the WebSocket handshake (code ${e.code}${e.reason ? `, ${e.reason}` : ""})`));
  });
}

/** Resume the client once the upstream send buffer has drained below half the high-water mark. */
function resumeWhenDrained(client: ServerWebSocket<WsBridge>, upstream: WebSocket): void {
  const check = () => {
    if (upstream.readyState !== WebSocket.OPEN) return;
    if (upstream.bufferedAmount > UPSTREAM_HIGH_WATER / 2) setTimeout(check, DRAIN_POLL_MS);
    else client.resume();
  };
  setTimeout(check, DRAIN_POLL_MS);
}

/** The server-side WebSocket handlers of the router's Bun.serve. */
export const webSocketHandlers: WebSocketHandler<WsBridge> = {
  // Bun pings idle clients; guests get their own pings from the client library.
  idleTimeout: 120,
  maxPayloadLength: 64 * 1024 * 1024,
  // Unlimited: the bridge pauses the upstream instead of letting Bun drop messages.
  backpressureLimit: 0,
  open(client) {
    const b = client.data;
    b.client = client;
    const { upstream } = b;
    for (const m of b.early) client.send(m);
    b.early = [];
    if (upstream.readyState !== WebSocket.OPEN) {
      // The guest hung up between its handshake and ours.
      b.end();
      client.close(1011, "upstream closed");
      return;
    }
    b.untrack = b.ctx.connections.add(b.instanceId, () => {
      client.close(1001, "instance removed");
      upstream.close(1001, "instance removed");
    });
    upstream.onmessage = (e) => {
      if (client.send(e.data as string | ArrayBuffer) === -1) upstream.pause();
    };
    upstream.onerror = (e) => b.ctx.log("router: upstream WebSocket error", { instanceId: b.instanceId, error: (e as ErrorEvent).message });
    upstream.onclose = (e) => {
      b.untrack?.();
      b.end();
      closeLike(client, e.code, e.reason);
    };
  },
  message(client, message) {
    const { upstream } = client.data;
    if (upstream.readyState !== WebSocket.OPEN) return; // closing: the close handler finishes the bridge
    upstream.send(message);
    if (upstream.bufferedAmount > UPSTREAM_HIGH_WATER && !client.isPaused) {
      client.pause();
      resumeWhenDrained(client, upstream);
    }
  },
  drain(client) {
    client.data.upstream.resume();
  },
  close(client, code, reason) {
    const b = client.data;
    b.untrack?.();
    b.end();
    if (b.upstream.readyState === WebSocket.OPEN || b.upstream.readyState === WebSocket.CONNECTING) closeLike(b.upstream, code, reason);
  },
};

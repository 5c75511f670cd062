/**
 * @module guest/harness/net-ports
 * `port.wait`: wait until something LISTENs on a TCP port in the guest, by
 * polling `/proc/net/tcp` and `/proc/net/tcp6` (state `0A` = TCP_LISTEN).
 * User processes share the harness's network namespace (they are only
 * chrooted), so these files list every socket in the VM. Polling costs no
 * fork (a `ss`/`netstat` per poll would cost 10-20 ms under TCG).
 */
import { existsSync, readFileSync } from "node:fs";
import { RpcErrorCode } from "../../src/api/schema/guest-wire.ts";
import { RpcError } from "../../src/api/jsonrpc.ts";

/** How often /proc/net/tcp* is re-read while waiting. */
export const PORT_POLL_MS = 50;

/** One listening socket. */
export interface Listener {
  port: number;
  /** True when bound to a loopback address only (127.0.0.0/8 or ::1): unreachable through port forwarding. */
  loopback: boolean;
}

function isLoopbackHex(hex: string): boolean {
  if (hex.length === 8) return hex.endsWith("7F"); // IPv4, little-endian: 127.x.y.z ends in 7F
  // IPv6 as four little-endian 32-bit words: ::1 is 00000000000000000000000001000000; also ::ffff:127.x.y.z
  if (hex === "00000000000000000000000001000000") return true;
  return hex.startsWith("0000000000000000FFFF0000") && hex.endsWith("7F");
}

/** Parse the text of /proc/net/tcp or tcp6 into its listening sockets. */
export function parseProcNetTcp(text: string): Listener[] {
  const out: Listener[] = [];
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4 || f[3] !== "0A") continue;
    const local = f[1]!;
    const colon = local.lastIndexOf(":");
    if (colon < 0) continue;
    const port = Number.parseInt(local.slice(colon + 1), 16);
    if (!Number.isFinite(port)) continue;
    out.push({ port, loopback: isLoopbackHex(local.slice(0, colon).toUpperCase()) });
  }
  return out;
}

/** Listening sockets on `port` right now, from /proc/net/tcp and tcp6. */
export function listenersOn(port: number, procNet = "/proc/net"): Listener[] {
  const out: Listener[] = [];
  for (const f of ["tcp", "tcp6"]) {
    const p = `${procNet}/${f}`;
    if (!existsSync(p)) continue; // tcp6 is absent when IPv6 is off
    out.push(...parseProcNetTcp(readFileSync(p, "utf8")).filter((l) => l.port === port));
  }
  return out;
}

/**
 * Resolve once `port` has a listener; `loopback_only` tells the host that
 * every listener is bound to loopback (so forwarding cannot reach it).
 * Rejects with a `timeout` RPC error after `timeoutMs`.
 */
export async function waitForListen(port: number, timeoutMs: number, procNet = "/proc/net"): Promise<{ ok: true; loopback_only: boolean }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ls = listenersOn(port, procNet);
    if (ls.length > 0) return { ok: true, loopback_only: ls.every((l) => l.loopback) };
    if (Date.now() >= deadline) throw new RpcError(RpcErrorCode.timeout, `nothing listens on TCP port ${port} after ${timeoutMs} ms`);
    await Bun.sleep(Math.min(PORT_POLL_MS, Math.max(1, deadline - Date.now())));
  }
}

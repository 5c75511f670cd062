/**
 * @module vmm/guest-port
 * Host side of `port.wait`: resolve once a guest TCP port has a listener, so
 * the router proxies only to a port that accepts. The harness polls
 * /proc/net/tcp{,6} every 50 ms; the channel call gets 5 s more than the
 * guest-side wait, so a slow guest reports its own timeout.
 */
import { RpcErrorCode } from "../api/schema/control.ts";
import type { ControlChannel } from "./control-channel.ts";
import { GuestPortTimeoutError } from "./errors.ts";
import { RpcError } from "../api/jsonrpc.ts";

/** What the guest saw listening. */
export interface GuestPortState {
  /** Every listener is bound to loopback: the port is open in the guest but QEMU's hostfwd cannot reach it. */
  loopbackOnly: boolean;
}

/**
 * Wait until something listens on guest TCP `port`. Throws
 * `GuestPortTimeoutError` after `timeoutMs`; channel errors (VM gone) propagate.
 */
export async function waitGuestPort(channel: ControlChannel, vmId: string, port: number, timeoutMs: number): Promise<GuestPortState> {
  try {
    const r = await channel.call("port.wait", { port, timeout_ms: timeoutMs }, { timeoutMs: timeoutMs + 5000 });
    return { loopbackOnly: r.loopback_only };
  } catch (err) {
    if (err instanceof RpcError && err.code === RpcErrorCode.timeout) throw new GuestPortTimeoutError(vmId, port, timeoutMs);
    throw err;
  }
}

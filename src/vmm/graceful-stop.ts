/**
 * @module vmm/graceful-stop
 * The clean stop every backend shares: ask the harness to power off
 * (`shutdown`), wait for the VMM process to end, and SIGKILL it when the
 * grace period runs out. A wedged or already-gone guest is expected here.
 */
import { ChannelClosedError, type ControlChannel, ChannelTimeoutError } from "./control-channel.ts";

/** Power the guest off through `channel`; `kill` fires if `exited` has not settled within `graceMs`. */
export async function shutdownGracefully(channel: ControlChannel, exited: Promise<number>, kill: () => void, graceMs: number): Promise<void> {
  const timer = setTimeout(kill, graceMs);
  try {
    await channel.call("shutdown", undefined, { timeoutMs: graceMs }).catch((err: unknown) => {
      // The timer's SIGKILL covers a guest that does not answer or already went away.
      if (!(err instanceof ChannelTimeoutError) && !(err instanceof ChannelClosedError)) throw err;
    });
    await exited;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * @module daemon/router/queued-writes
 * Socket writes with backpressure for the router front: Bun's socket.write
 * takes what the kernel buffer holds and returns the count, so the rest is
 * queued per direction and written on drain, and the side producing the
 * bytes is paused meanwhile (so a slow reader never makes the router buffer
 * a whole body). One queue per direction keeps the bytes in order.
 */
import type { Socket } from "bun";

/**
 * Write `bytes` to `socket`, queueing what it does not take; `onFull` runs
 * when something was queued (to pause the producer). Strings must be ASCII
 * only (front-bytes.ts headBytes): their length is their byte count.
 */
export function writeQueued(socket: Socket<any>, queue: Uint8Array[], bytes: Uint8Array | string, onFull: () => void): void {
  if (bytes.length === 0) return;
  if (queue.length > 0) {
    queue.push(typeof bytes === "string" ? Buffer.from(bytes, "latin1") : new Uint8Array(bytes));
    return;
  }
  const n = socket.write(bytes);
  if (n < bytes.length) {
    queue.push(typeof bytes === "string" ? Buffer.from(bytes.slice(Math.max(n, 0)), "latin1") : new Uint8Array(bytes.subarray(Math.max(n, 0))));
    onFull();
  }
}

/** Write what `queue` holds (on drain); true when it is empty afterwards. */
export function flushQueue(socket: Socket<any>, queue: Uint8Array[]): boolean {
  while (queue.length > 0) {
    const head = queue[0]!;
    const n = socket.write(head);
    if (n < head.length) {
      queue[0] = head.subarray(Math.max(n, 0));
      return false;
    }
    queue.shift();
  }
  return true;
}

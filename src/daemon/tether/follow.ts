/**
 * @module daemon/tether/follow
 * Following an instance's tether stream with backpressure: a slow or stopped
 * reader never makes aegisd hold more than a small buffer of frames. Live
 * frames wait in a bounded buffer (FOLLOW_BUFFER_FRAMES / _BYTES); past it
 * the buffer is dropped and the follower reads the frames it missed from the
 * store by sequence once its reader takes data again, then goes live. Every
 * frame is stored before it is published, so nothing is lost (except frames
 * pruned by the store's own limits meanwhile, as for any late reader) and
 * none is sent twice (frames at or below the last sent `seq` are skipped).
 */
import type { StoredFrame, TetherStore } from "./store.ts";

/** Live frames a follower buffers before it falls back to reading the store. */
export const FOLLOW_BUFFER_FRAMES = 256;
/** Bytes of JSON a follower buffers before it falls back to reading the store. */
export const FOLLOW_BUFFER_BYTES = 4 * 1024 * 1024;
const PAGE = 100;

/**
 * Stream `instanceId`'s egress frames to `emit` (after `afterSeq`, or the
 * recent ones when undefined, then live) until `signal` aborts. `emit`
 * resolves when the reader has room for more.
 */
export async function followTether(store: TetherStore, instanceId: string, afterSeq: number | undefined, emit: (f: StoredFrame) => Promise<void>, signal: AbortSignal): Promise<void> {
  let last = afterSeq ?? 0;
  let buffer: StoredFrame[] = [];
  let bytes = 0;
  let overflow = false;
  let wake: (() => void) | null = null;
  const onFrame = (f: StoredFrame): void => {
    if (overflow) return;
    const size = JSON.stringify(f).length;
    if (buffer.length >= FOLLOW_BUFFER_FRAMES || bytes + size > FOLLOW_BUFFER_BYTES) {
      // Too far behind: forget the buffer, the store has every frame.
      overflow = true;
      buffer = [];
      bytes = 0;
    } else {
      buffer.push(f);
      bytes += size;
    }
    wake?.();
  };
  const off = store.subscribe(instanceId, afterSeq, onFrame);
  const aborted = new Promise<void>((r) => signal.addEventListener("abort", () => r(), { once: true }));
  try {
    while (!signal.aborted) {
      if (overflow) {
        overflow = false;
        // Catch up from the store, page by page, each frame as the reader takes it.
        for (;;) {
          const page = store.frames(instanceId, "egress", last, PAGE);
          for (const f of page) {
            if (signal.aborted) return;
            last = f.seq;
            await emit(f);
          }
          if (page.length < PAGE) break;
        }
        continue;
      }
      const next = buffer.shift();
      if (next) {
        bytes -= JSON.stringify(next).length;
        if (next.seq <= last) continue;
        last = next.seq;
        await emit(next);
        continue;
      }
      await Promise.race([new Promise<void>((r) => (wake = r)), aborted]);
      wake = null;
    }
  } finally {
    off();
  }
}

/**
 * @module daemon/ui/sse
 * The UI's two Server-Sent Event streams.
 *
 * `/events`: one stream per page, fed by the daemon's own state changes
 * (daemon/events.ts), not by polling. Changes are coalesced into a set of
 * dirty instance ids and each is rendered when the stream gets to it, so a
 * slow browser costs at most one pending entry per instance and always ends
 * on the current state.
 *
 * `/instances/:id/logs`: the last {@link LOG_TAIL} output lines, then live
 * ones. A browser that falls more than {@link LOG_BACKLOG} lines behind
 * loses the oldest ones, with a marker saying how many: the page is a view,
 * `aegis logs` has the whole log.
 */
import type { Context } from "hono";
import { streamSSE } from "hono/streaming";
import { chunkBytes } from "../../api/log-chunks.ts";
import type { EventBus } from "../events.ts";
import type { LogStore } from "../logs/log-store.ts";

/** Output lines replayed when a page opens. */
export const LOG_TAIL = 500;
/** Lines held for one slow browser before the oldest are dropped. */
export const LOG_BACKLOG = 2000;
/** Comment lines keep idle streams (and proxies) from timing out. */
const HEARTBEAT_MS = 15_000;

/** A waiter that a producer can wake; resolves at the latest after `ms`. */
function waiter(): { wait: (ms: number) => Promise<void>; wake: () => void } {
  let resolve: (() => void) | null = null;
  return {
    wait: (ms) =>
      new Promise<void>((r) => {
        const t = setTimeout(r, ms);
        resolve = () => {
          clearTimeout(t);
          r();
        };
      }),
    wake: () => {
      const r = resolve;
      resolve = null;
      r?.();
    },
  };
}

/** `/events`: `instance` events carrying `render(id)` for each changed instance. */
export function instanceEvents(c: Context, events: EventBus, render: (id: string) => unknown): Response {
  return streamSSE(c, async (stream) => {
    const dirty = new Set<string>();
    const w = waiter();
    const unsubscribe = events.subscribe((e) => {
      dirty.add(e.id);
      w.wake();
    });
    stream.onAbort(() => {
      unsubscribe();
      w.wake();
    });
    try {
      await stream.writeSSE({ event: "hello", data: "{}" });
      while (!stream.aborted) {
        if (dirty.size === 0) await w.wait(HEARTBEAT_MS);
        if (stream.aborted) break;
        if (dirty.size === 0) {
          await stream.write(": keepalive\n\n");
          continue;
        }
        const ids = [...dirty];
        dirty.clear();
        for (const id of ids) await stream.writeSSE({ event: "instance", data: JSON.stringify(render(id)) });
      }
    } finally {
      unsubscribe();
    }
  });
}

/** `/instances/:id/logs`: `line` events `{stream, text}`, `skipped` when lines were dropped, `end` when the log closes. */
export function logEvents(c: Context, logs: LogStore, id: string): Response {
  return streamSSE(c, async (stream) => {
    const queue: { stream: string; text: string }[] = [];
    let skipped = 0;
    let ended = false;
    const w = waiter();
    const unsubscribe = logs.subscribe(
      id,
      true,
      (line) => {
        if (line === null) ended = true;
        else {
          queue.push({ stream: line.stream, text: line.text ?? chunkBytes(line).toString("utf8") });
          if (queue.length > LOG_BACKLOG) {
            queue.shift();
            skipped += 1;
          }
        }
        w.wake();
      },
      LOG_TAIL,
    );
    stream.onAbort(() => {
      unsubscribe();
      w.wake();
    });
    try {
      while (!stream.aborted) {
        if (skipped > 0) {
          await stream.writeSSE({ event: "skipped", data: JSON.stringify({ lines: skipped }) });
          skipped = 0;
        }
        const batch = queue.splice(0, queue.length);
        for (const l of batch) await stream.writeSSE({ event: "line", data: JSON.stringify(l) });
        if (ended && queue.length === 0) {
          await stream.writeSSE({ event: "end", data: "{}" });
          break;
        }
        if (queue.length === 0) {
          await w.wait(HEARTBEAT_MS);
          if (queue.length === 0 && !ended && !stream.aborted) await stream.write(": keepalive\n\n");
        }
      }
    } finally {
      unsubscribe();
    }
  });
}

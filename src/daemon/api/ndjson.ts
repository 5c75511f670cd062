/**
 * @module daemon/api/ndjson
 * NDJSON streaming responses: one JSON value per line, flushed as produced.
 *
 * Backpressure: the stream queues at most {@link NDJSON_HIGH_WATER_BYTES}
 * before `emit`'s promise stays pending; it settles when the client has read
 * enough for the queue to drop below that (Bun stops pulling from a response
 * stream whose socket is not draining). A producer that awaits `emit` is thus
 * held to the client's pace; one that does not still gets every line. When
 * the client goes away, pending and later emits settle at once (the lines
 * are dropped), so a producer is never stuck on a vanished reader.
 */

const encoder = new TextEncoder();

/** Bytes a response queues in aegisd before its producer is held back. */
export const NDJSON_HIGH_WATER_BYTES = 256 * 1024;

/** Headers of every NDJSON response. */
export const NDJSON_HEADERS = { "content-type": "application/x-ndjson", "cache-control": "no-store" } as const;

/** Emit one value; the promise settles once the client has room for more. */
export type NdjsonEmit = (value: unknown) => Promise<void>;

/**
 * A streaming response fed by `produce(emit)`. The stream ends when the
 * returned promise settles; `produce` must report its own failures as lines
 * (the status line has already been sent when they happen).
 */
export function ndjsonResponse(produce: (emit: NdjsonEmit) => Promise<void>): Response {
  let open = true;
  let waiters: Array<() => void> = [];
  const wake = (): void => {
    const w = waiters;
    waiters = [];
    for (const r of w) r();
  };
  const stream = new ReadableStream<Uint8Array>(
    {
      start(controller) {
        const emit: NdjsonEmit = (value) => {
          if (!open) return Promise.resolve();
          controller.enqueue(encoder.encode(`${JSON.stringify(value)}\n`));
          if ((controller.desiredSize ?? 1) > 0) return Promise.resolve();
          return new Promise<void>((r) => waiters.push(r));
        };
        produce(emit).then(
          () => {
            if (open) controller.close();
            open = false;
            wake();
          },
          (err: unknown) => {
            if (open) controller.error(err);
            open = false;
            wake();
          },
        );
      },
      pull() {
        wake();
      },
      cancel() {
        open = false;
        wake();
      },
    },
    new ByteLengthQueuingStrategy({ highWaterMark: NDJSON_HIGH_WATER_BYTES }),
  );
  return new Response(stream, { headers: NDJSON_HEADERS });
}

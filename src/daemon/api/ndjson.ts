/**
 * @module daemon/api/ndjson
 * NDJSON streaming responses: one JSON value per line, flushed as produced.
 */

const encoder = new TextEncoder();

/** Headers of every NDJSON response. */
export const NDJSON_HEADERS = { "content-type": "application/x-ndjson", "cache-control": "no-store" } as const;

/**
 * A streaming response fed by `produce(emit)`. The stream ends when the
 * returned promise settles; `produce` must report its own failures as lines
 * (the status line has already been sent when they happen).
 */
export function ndjsonResponse(produce: (emit: (value: unknown) => void) => Promise<void>): Response {
  let open = true;
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      const emit = (value: unknown) => {
        if (open) controller.enqueue(encoder.encode(`${JSON.stringify(value)}\n`));
      };
      produce(emit).then(
        () => {
          if (open) controller.close();
          open = false;
        },
        (err: unknown) => {
          if (open) controller.error(err);
          open = false;
        },
      );
    },
    cancel() {
      open = false;
    },
  });
  return new Response(stream, { headers: NDJSON_HEADERS });
}

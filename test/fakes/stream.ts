/**
 * Streaming helpers shared by the fake LLM servers: a Response whose body is
 * written by an async function, with a clean end, an abrupt cut (connection
 * reset, no terminating chunk) and a flag telling when the client went away.
 */

/** Writer side of a streamed body. */
export interface BodyWriter {
  /** Write text; false once the client has gone away or the body ended. */
  write(text: string): boolean;
  /** End the body cleanly. */
  end(): void;
  /** Reset the connection mid-body (the client sees ECONNRESET). */
  cut(): void;
  /** True once the client cancelled (disconnected or aborted). */
  readonly cancelled: boolean;
}

/** A Response whose body `run` writes; errors in `run` cut the stream. */
export function streamingResponse(run: (w: BodyWriter) => Promise<void>, init: ResponseInit): Response {
  const enc = new TextEncoder();
  let done = false;
  let cancelled = false;
  let ctl!: ReadableStreamDefaultController<Uint8Array>;
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      ctl = c;
    },
    cancel() {
      cancelled = true;
      done = true;
    },
  });
  const writer: BodyWriter = {
    write(text) {
      if (done) return false;
      ctl.enqueue(enc.encode(text));
      return true;
    },
    end() {
      if (done) return;
      done = true;
      ctl.close();
    },
    cut() {
      if (done) return;
      done = true;
      // An undefined reason resets the connection without Bun printing a stack for it.
      ctl.error(undefined);
    },
    get cancelled() {
      return cancelled;
    },
  };
  queueMicrotask(() => {
    run(writer).then(
      () => writer.end(),
      () => writer.cut(),
    );
  });
  return new Response(body, init);
}

/** Split a string into pieces of at most `size` characters (to exercise chunk boundaries). */
export function fragments(text: string, size: number | undefined): string[] {
  if (!size || size <= 0) return [text];
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out;
}

/** Quiet error handler for Bun.serve (a cut stream is intentional here). */
export function quietError(): Response {
  return new Response("fake server error", { status: 500 });
}

/** Headers as a plain object, lower-cased names. */
export function headerObject(h: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  h.forEach((v, k) => {
    out[k.toLowerCase()] = v;
  });
  return out;
}

/** Cut the stream after letting what was written reach the client (a cut mid-body, not before the headers). */
export async function cutSoon(w: BodyWriter): Promise<void> {
  await Bun.sleep(30);
  w.cut();
}

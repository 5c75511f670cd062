/**
 * @module guest/agent/sse
 * A Server-Sent Events parser following the WHATWG "event stream
 * interpretation" rules: lines end in CRLF, LF or CR (a CRLF split across two
 * chunks counts once); `event`, `data`, `id`, `retry` fields; `:` comments;
 * one optional space after the colon; several `data` lines join with `\n`;
 * an event is dispatched at a blank line and only if it has data. Bytes are
 * decoded as a UTF-8 stream, so a character split across chunks survives.
 */

/** One dispatched event. `event` is `"message"` when the stream named none. */
export interface SseEvent {
  event: string;
  data: string;
  id?: string;
  retry?: number;
}

/** Incremental parser: feed chunks, collect the events they complete. */
export class SseParser {
  private readonly decoder = new TextDecoder("utf-8");
  private line = "";
  private afterCR = false;
  private eventType = "";
  private data: string[] = [];
  private lastId: string | undefined;
  private retry: number | undefined;

  /** Parse the next chunk (bytes or already-decoded text); returns the events it completed. */
  push(chunk: Uint8Array | string): SseEvent[] {
    const text = typeof chunk === "string" ? chunk : this.decoder.decode(chunk, { stream: true });
    const out: SseEvent[] = [];
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      if (c === 10 && this.afterCR && i === start && this.line === "") {
        // The LF of a CRLF whose CR ended the previous chunk or line.
        this.afterCR = false;
        start = i + 1;
        continue;
      }
      this.line += text.slice(start, i);
      this.afterCR = c === 13;
      if (c === 13 && text.charCodeAt(i + 1) === 10) {
        i++;
        this.afterCR = false;
      }
      start = i + 1;
      const ev = this.takeLine();
      if (ev) out.push(ev);
    }
    if (start < text.length) {
      this.line += text.slice(start);
      this.afterCR = false;
    }
    return out;
  }

  /**
   * End of stream. Per the spec an unterminated final event is discarded;
   * returns true when such partial input was pending, so callers can report a
   * truncated stream.
   */
  end(): { truncated: boolean } {
    const rest = this.decoder.decode();
    if (rest) this.line += rest;
    const truncated = this.line.length > 0 || this.data.length > 0 || this.eventType !== "";
    this.line = "";
    this.data = [];
    this.eventType = "";
    return { truncated };
  }

  private takeLine(): SseEvent | undefined {
    const line = this.line;
    this.line = "";
    if (line === "") return this.dispatch();
    if (line.startsWith(":")) return undefined;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "event":
        this.eventType = value;
        break;
      case "data":
        this.data.push(value);
        break;
      case "id":
        if (!value.includes("\0")) this.lastId = value;
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.retry = Number(value);
        break;
      default:
        break; // Unknown fields are ignored by the SSE spec.
    }
    return undefined;
  }

  private dispatch(): SseEvent | undefined {
    const hasData = this.data.length > 0;
    const ev: SseEvent = { event: this.eventType || "message", data: this.data.join("\n") };
    if (this.lastId !== undefined) ev.id = this.lastId;
    if (this.retry !== undefined) ev.retry = this.retry;
    this.data = [];
    this.eventType = "";
    return hasData ? ev : undefined;
  }
}

import { describe, expect, it } from "bun:test";
import { SseParser, type SseEvent } from "../../../../guest/agent/sse.ts";

/** Feed `chunks` through one parser and collect every event. */
function parse(chunks: (string | Uint8Array)[]): { events: SseEvent[]; truncated: boolean } {
  const p = new SseParser();
  const events = chunks.flatMap((c) => p.push(c));
  return { events, truncated: p.end().truncated };
}

describe("SseParser", () => {
  it("parses OpenAI-style data-only events ending in [DONE]", () => {
    const { events } = parse(['data: {"a":1}\n\ndata: [DONE]\n\n']);
    expect(events).toEqual([
      { event: "message", data: '{"a":1}' },
      { event: "message", data: "[DONE]" },
    ]);
  });

  it("parses Anthropic-style named events", () => {
    const { events } = parse(["event: ping\ndata: {\"type\": \"ping\"}\n\nevent: message_stop\ndata: {}\n\n"]);
    expect(events.map((e) => e.event)).toEqual(["ping", "message_stop"]);
  });

  it("reassembles events split at every possible byte boundary", () => {
    const text = "event: content_block_delta\ndata: {\"text\":\"héllo 👋\"}\n\n";
    const bytes = new TextEncoder().encode(text);
    for (let cut = 1; cut < bytes.length; cut++) {
      const { events } = parse([bytes.slice(0, cut), bytes.slice(cut)]);
      expect(events).toEqual([{ event: "content_block_delta", data: '{"text":"héllo 👋"}' }]);
    }
  });

  it("handles CRLF and lone CR line endings, including a CRLF split across chunks", () => {
    expect(parse(["data: a\r\n\r\ndata: b\r\r"]).events.map((e) => e.data)).toEqual(["a", "b"]);
    expect(parse(["data: a\r", "\n\r", "\ndata: b\r\n", "\r\n"]).events.map((e) => e.data)).toEqual(["a", "b"]);
  });

  it("joins multi-line data, ignores comments and unknown fields, strips one space", () => {
    const { events } = parse([": keep-alive\ndata:  two spaces\ndata:x\nfoo: bar\nid: 7\nretry: 100\n\n"]);
    expect(events).toEqual([{ event: "message", data: " two spaces\nx", id: "7", retry: 100 }]);
  });

  it("does not dispatch events without data and reports a truncated final event", () => {
    expect(parse(["event: ping\n\n"]).events).toEqual([]);
    const cut = parse(['data: {"partial":']);
    expect(cut.events).toEqual([]);
    expect(cut.truncated).toBe(true);
    expect(parse(["data: ok\n\n"]).truncated).toBe(false);
  });
});

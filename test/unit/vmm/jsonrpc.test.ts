import { describe, expect, it } from "bun:test";
import { isParseFailure, LineSplitter, notification, parseMessage, request } from "../../../src/api/jsonrpc.ts";

describe("NDJSON framing", () => {
  it("encodes one message per line, escaping newlines inside strings", () => {
    const line = request(1, "run", { argv: ["a\nb"] });
    expect(line.endsWith("\n")).toBe(true);
    expect(line.slice(0, -1).includes("\n")).toBe(false);
    expect(JSON.parse(line)).toEqual({ jsonrpc: "2.0", id: 1, method: "run", params: { argv: ["a\nb"] } });
  });

  it("reassembles lines split across chunks, including inside a multi-byte character", () => {
    const s = new LineSplitter();
    const bytes = new TextEncoder().encode(`${notification("x", { t: "é€" })}${notification("y")}`);
    const cut = bytes.indexOf(0xe2) + 1; // in the middle of "€"
    expect(s.push(bytes.subarray(0, cut))).toEqual([]);
    const lines = s.push(bytes.subarray(cut));
    expect(lines.length).toBe(2);
    expect(JSON.parse(lines[0]!).params.t).toBe("é€");
  });

  it("keeps a partial line intact when the reader reuses its Buffer for the next read", () => {
    const s = new LineSplitter();
    const buf = Buffer.alloc(16);
    const feed = (text: string) => {
      const n = buf.write(text);
      return s.push(buf.subarray(0, n));
    };
    expect(feed('{"a":')).toEqual([]);
    expect(feed('1}\n{"b":2}\n')).toEqual(['{"a":1}', '{"b":2}']);
  });

  it("drops a line over the limit without buffering it and resynchronises at the next newline", () => {
    let announced = 0;
    const s = new LineSplitter({ maxLineBytes: 8, onOverlong: () => announced++ });
    const enc = new TextEncoder();
    expect(s.push(enc.encode("ok\nAAAAAA"))).toEqual(["ok"]);
    expect(s.push(enc.encode("AAAAAA"))).toEqual([]); // 12 bytes now: over the limit
    expect(announced).toBe(1);
    for (let i = 0; i < 1000; i++) expect(s.push(new Uint8Array(4096).fill(65))).toEqual([]);
    expect(announced).toBe(1); // once per line, however long it goes on
    expect((s as unknown as { partsLength: number }).partsLength).toBe(0); // nothing of it is kept
    expect(s.push(enc.encode("AAA\nnext\n12345678\n"))).toEqual(["next", "12345678"]);
    expect(s.overlongLines).toBe(1);
    expect(s.discardedBytes).toBe(12 + 1000 * 4096 + 3);
  });

  it("drops an over-long line that arrives whole in one chunk and keeps the lines around it", () => {
    const s = new LineSplitter(4);
    expect(s.push(new TextEncoder().encode("a\n123456789\nb\n"))).toEqual(["a", "b"]);
    expect(s.overlongLines).toBe(1);
  });

  it("reports parse errors and non-JSON-RPC objects as errors, not throws", () => {
    const bad = parseMessage("{nope");
    expect(isParseFailure(bad) && bad.code).toBe(-32700);
    const wrong = parseMessage('{"id":1}');
    expect(isParseFailure(wrong) && wrong.code).toBe(-32600);
    expect(isParseFailure(parseMessage('{"jsonrpc":"2.0","method":"ping","id":3}'))).toBe(false);
  });
});

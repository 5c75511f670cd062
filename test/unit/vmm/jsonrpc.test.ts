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

  it("guards against a runaway line", () => {
    const s = new LineSplitter(8);
    expect(() => s.push(new Uint8Array(16).fill(65))).toThrow(/exceeds 8 bytes/);
  });

  it("reports parse errors and non-JSON-RPC objects as errors, not throws", () => {
    const bad = parseMessage("{nope");
    expect(isParseFailure(bad) && bad.code).toBe(-32700);
    const wrong = parseMessage('{"id":1}');
    expect(isParseFailure(wrong) && wrong.code).toBe(-32600);
    expect(isParseFailure(parseMessage('{"jsonrpc":"2.0","method":"ping","id":3}'))).toBe(false);
  });
});

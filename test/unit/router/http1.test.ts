import { describe, expect, it } from "bun:test";
import { ChunkedFramer, headEnd, LengthFramer, MAX_HEAD, parseRequestHead, parseResponseHead, responseFraming } from "../../../src/daemon/router/http1.ts";

const head = (lines: string[]) => lines.join("\r\n");

describe("router front: request heads", () => {
  it("parses what routing needs: method, target, Host, body framing, Connection: close", () => {
    const h = parseRequestHead(head(["POST /web/x?q=1 HTTP/1.1", "Host: web.localhost:8099", "Content-Length: 12", "Connection: close", "X-Custom:  spaced  "]))!;
    expect([h.method, h.target, h.host, h.body, h.close]).toEqual(["POST", "/web/x?q=1", "web.localhost:8099", { kind: "length", length: 12 }, true]);
    expect(h.headers.at(-1)).toEqual(["X-Custom", "spaced", "x-custom"]);
    expect(parseRequestHead(head(["GET / HTTP/1.1", "Host: a"]))!.body).toEqual({ kind: "length", length: 0 });
    expect(parseRequestHead(head(["PUT / HTTP/1.1", "Host: a", "Transfer-Encoding: Chunked"]))!.body).toEqual({ kind: "chunked" });
  });

  it("leaves to Bun.serve everything unusual or ambiguous (null)", () => {
    const rejected = [
      ["GET / HTTP/1.0", "Host: a"], // HTTP/1.0
      ["GET http://a/ HTTP/1.1", "Host: a"], // absolute form
      ["CONNECT a:443 HTTP/1.1", "Host: a"],
      ["GET /a/../b HTTP/1.1", "Host: a"], // dot segments Bun.serve would resolve
      ["GET /a/%2e%2E/b HTTP/1.1", "Host: a"],
      ["GET /. HTTP/1.1", "Host: a"],
      ["GET / HTTP/1.1"], // no Host
      ["GET / HTTP/1.1", "Host: a", "Host: b"], // two Hosts
      ["POST / HTTP/1.1", "Host: a", "Content-Length: 1", "Content-Length: 1"],
      ["POST / HTTP/1.1", "Host: a", "Content-Length: -1"],
      ["POST / HTTP/1.1", "Host: a", "Content-Length: 1", "Transfer-Encoding: chunked"], // smuggling shape
      ["POST / HTTP/1.1", "Host: a", "Transfer-Encoding: gzip, chunked"],
      ["GET / HTTP/1.1", "Host: a", "Upgrade: websocket", "Connection: Upgrade"],
      ["GET / HTTP/1.1", "Host: a", " folded: value"], // obs-fold
      ["GET / HTTP/1.1", "Host: a", "Bad Name: x"],
      ["GET / HTTP/1.1", "Host: a\nX-Smuggled: 1"], // bare LF
      ["GET / HTTP/1.1", "Host: a\x00"],
      ["GET /a b HTTP/1.1", "Host: a"],
    ];
    for (const lines of rejected) expect([lines, parseRequestHead(head(lines))]).toEqual([lines, null]);
  });

  it("finds the end of a head", () => {
    const buf = Buffer.from("GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY");
    expect(buf.subarray(headEnd(buf)).toString()).toBe("BODY");
    expect(headEnd(Buffer.from("GET / HTTP/1.1\r\nHost: a\r\n"))).toBe(-1);
    expect(MAX_HEAD).toBeGreaterThanOrEqual(16 * 1024);
  });
});

describe("router front: response heads and framing", () => {
  it("parses status, reason and whether the guest keeps the connection", () => {
    expect(parseResponseHead(head(["HTTP/1.1 418 I'm a teapot", "X: 1"]))).toMatchObject({ status: 418, reason: "I'm a teapot", close: false });
    expect(parseResponseHead(head(["HTTP/1.1 200 OK", "Connection: close"]))!.close).toBe(true);
    expect(parseResponseHead(head(["HTTP/1.0 200 OK"]))!.close).toBe(true);
    expect(parseResponseHead(head(["HTTP/1.0 200 OK", "Connection: keep-alive"]))!.close).toBe(false);
    expect(parseResponseHead(head(["HTTP/1.1 200"]))).toMatchObject({ status: 200, reason: "" });
    expect(parseResponseHead(head(["HTTP/2 200 OK"]))).toBeNull();
    expect(parseResponseHead(head(["HTTP/1.1 200 OK", "X: a\rb"]))).toBeNull();
  });

  it("frames a response by its method, status, Transfer-Encoding and Content-Length", () => {
    const f = (lines: string[], method = "GET") => responseFraming(parseResponseHead(head(lines))!, method);
    expect(f(["HTTP/1.1 200 OK", "Content-Length: 5"])).toBeInstanceOf(LengthFramer);
    expect((f(["HTTP/1.1 200 OK", "Content-Length: 5"], "HEAD") as LengthFramer).done).toBe(true);
    expect((f(["HTTP/1.1 204 No Content"]) as LengthFramer).done).toBe(true);
    expect((f(["HTTP/1.1 304 Not Modified", "Content-Length: 9"]) as LengthFramer).done).toBe(true);
    expect(f(["HTTP/1.1 200 OK", "Transfer-Encoding: chunked", "Content-Length: 5"])).toBeInstanceOf(ChunkedFramer);
    expect(f(["HTTP/1.1 200 OK", "Transfer-Encoding: gzip"])).toBe("close");
    expect(f(["HTTP/1.1 200 OK"])).toBe("close");
    expect(f(["HTTP/1.1 200 OK", "Content-Length: 5", "Content-Length: 6"])).toBeInstanceOf(Error);
    expect(f(["HTTP/1.1 200 OK", "Content-Length: 5x"])).toBeInstanceOf(Error);
  });
});

describe("router front: body framers", () => {
  it("counts a Content-Length body and stops at its end", () => {
    const f = new LengthFramer(5);
    expect(f.feed(Buffer.from("abc"), 0)).toBe(3);
    expect(f.done).toBe(false);
    expect(f.feed(Buffer.from("deGET"), 0)).toBe(2);
    expect(f.done).toBe(true);
  });

  it("follows chunked framing split at every byte, with extensions and trailers, and stops at its end", () => {
    const body = "5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\n";
    const next = "GET / HTTP/1.1\r\n";
    for (let split = 1; split < body.length; split++) {
      const f = new ChunkedFramer();
      const bytes = Buffer.from(body + next);
      expect(f.feed(bytes.subarray(0, split), 0)).toBe(split);
      expect(f.done).toBe(false);
      expect(f.feed(bytes.subarray(split), 0)).toBe(body.length - split);
      expect(f.done).toBe(true);
    }
    const whole = new ChunkedFramer();
    expect(whole.feed(Buffer.from(`0\r\n\r\n${next}`), 0)).toBe(5);
  });

  it("rejects broken chunked framing instead of guessing", () => {
    for (const bad of ["x\r\n", "\r\n", "5\r\nhelloXX", "5\nhello", "1234567890abc\r\n", "0\r\nT: x\n\r\n", "0\r\n\rX"]) {
      expect([bad, new ChunkedFramer().feed(Buffer.from(bad), 0)]).toEqual([bad, expect.any(Error)]);
    }
    // Each line end is checked where it is read; the error names the line.
    const cases: [string, string][] = [
      ["5;ext\nhello", "bare LF in chunk extension"],
      ["5;ext\rX", "chunk size line not ended by CRLF"],
      ["5\r\nhello\rX", "chunk data not followed by CRLF"],
      ["0\r\nT: x\nY", "bare LF in trailer"],
      ["0\r\nT: x\rY", "trailer line not ended by CRLF"],
      ["0\r\n\rX", "chunked body not ended by CRLF"],
    ];
    for (const [bad, message] of cases) expect([bad, (new ChunkedFramer().feed(Buffer.from(bad), 0) as Error).message]).toEqual([bad, message]);
    const long = new ChunkedFramer();
    expect(long.feed(Buffer.from(`1;${"e".repeat(20_000)}`), 0)).toBeInstanceOf(Error);
  });
});

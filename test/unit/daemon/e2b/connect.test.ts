import { describe, expect, it } from "bun:test";
import { ConnectError, envelope, errorJson, parseEnvelopedRequest, serverStream, unary } from "../../../../src/daemon/e2b/connect.ts";

/** Split a Connect streaming body into its envelopes. */
function envelopes(bytes: Uint8Array): { flags: number; json: unknown }[] {
  const out = [];
  const b = Buffer.from(bytes);
  for (let off = 0; off < b.length; ) {
    const len = b.readUInt32BE(off + 1);
    out.push({ flags: b[off]!, json: JSON.parse(b.subarray(off + 5, off + 5 + len).toString("utf8")) });
    off += 5 + len;
  }
  return out;
}

function streamRequest(msg: unknown, headers: Record<string, string> = {}): Request {
  return new Request("http://x/process.Process/Start", { method: "POST", headers: { "content-type": "application/connect+json", ...headers }, body: envelope(0, msg) });
}

describe("Connect framing", () => {
  it("round-trips one enveloped request message", () => {
    expect(parseEnvelopedRequest(envelope(0, { a: 1 }))).toEqual({ a: 1 });
  });

  it("refuses a truncated, compressed or mis-sized envelope", () => {
    expect(() => parseEnvelopedRequest(new Uint8Array([0, 0]))).toThrow(/shorter than one Connect envelope/);
    const c = envelope(1, {});
    expect(() => parseEnvelopedRequest(c)).toThrow(/compressed/);
    const bad = Buffer.from(envelope(0, { a: 1 }));
    bad.writeUInt32BE(99, 1);
    expect(() => parseEnvelopedRequest(bad)).toThrow(/says 99 bytes/);
  });

  it("streams messages then an end-stream envelope, and ends with the handler's error", async () => {
    const ok = await serverStream(streamRequest({ n: 2 }), {}, async (msg, sink) => {
      for (let i = 0; i < (msg as { n: number }).n; i++) sink.send({ i });
    });
    expect(ok.headers.get("content-type")).toBe("application/connect+json");
    expect(envelopes(new Uint8Array(await ok.arrayBuffer()))).toEqual([
      { flags: 0, json: { i: 0 } },
      { flags: 0, json: { i: 1 } },
      { flags: 2, json: {} },
    ]);
    const failed = await serverStream(streamRequest({}), {}, async () => {
      throw new ConnectError("not_found", "no such process");
    });
    expect(envelopes(new Uint8Array(await failed.arrayBuffer()))).toEqual([{ flags: 2, json: { error: { code: "not_found", message: "no such process" } } }]);
  });

  it("ends a stream at its Connect-Timeout-Ms deadline", async () => {
    const r = await serverStream(streamRequest({}, { "connect-timeout-ms": "50" }), {}, (_m, sink) => new Promise<void>((res) => sink.signal.addEventListener("abort", () => res())));
    const env = envelopes(new Uint8Array(await r.arrayBuffer()));
    expect(env.at(-1)).toEqual({ flags: 2, json: { error: { code: "deadline_exceeded", message: "the call ran past its 50 ms deadline" } } });
  });

  it("answers unary errors with the code's HTTP status and JSON body", async () => {
    const r = await unary(new Request("http://x/", { method: "POST", headers: { "content-type": "application/json" }, body: "{}" }), async () => {
      throw new ConnectError("already_exists", "exists");
    });
    expect(r.status).toBe(409);
    expect(await r.json()).toEqual({ code: "already_exists", message: "exists" });
    const proto = await unary(new Request("http://x/", { method: "POST", headers: { "content-type": "application/proto" }, body: "" }), async () => ({}));
    expect(proto.status).toBe(501);
    const malformed = await unary(new Request("http://x/", { method: "POST", headers: { "content-type": "application/json" }, body: "{" }), async () => ({}));
    expect(malformed.status).toBe(400);
    expect(((await malformed.json()) as { code: string }).code).toBe("invalid_argument");
  });

  it("maps our AppErrors onto Connect codes", () => {
    expect(errorJson({ code: "not_found", message: "m" })).toEqual({ code: "not_found", message: "m" });
    expect(errorJson({ code: "conflict", message: "m" }).code).toBe("already_exists");
    expect(errorJson(new Error("boom")).code).toBe("internal");
  });
});

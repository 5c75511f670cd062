import { afterAll, describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { egressFrame } from "../../../src/api/schema/tether.ts";
import { AegisApiError, ndjsonLines, parseFrameLine, UnixTetherClient } from "../../../src/gateway/aegis-client.ts";
import { FakeAegisd } from "../../fakes/aegisd.ts";

const dir = mkdtempSync(join(tmpdir(), "ag-cl-"));
const sock = join(dir, "aegisd.sock");
const daemon = new FakeAegisd(sock, "my-agent", { TELEGRAM_BOT_TOKEN: "1:tok" });
afterAll(() => {
  daemon.stop();
  rmSync(dir, { recursive: true, force: true });
});
const session = { channel: "telegram", id: "1" };

describe("ndjsonLines", () => {
  it("splits lines across chunks and keeps an unterminated last line", async () => {
    const enc = new TextEncoder();
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        for (const part of ['{"a"', ":1}\n\n{", '"b":2}']) c.enqueue(enc.encode(part));
        c.close();
      },
    });
    const lines: string[] = [];
    for await (const l of ndjsonLines(body)) lines.push(l);
    expect(lines).toEqual(['{"a":1}', "", '{"b":2}']);
  });

  it("explains lines that are not frames", () => {
    expect(parseFrameLine("nope")).toContain("not JSON");
    expect(parseFrameLine('{"type":"x"}')).toContain("not a tether frame");
  });
});

describe("UnixTetherClient", () => {
  const client = new UnixTetherClient({ socketPath: sock, instance: "my-agent" });

  it("resolves secrets and reports a missing one as a 404", async () => {
    expect(await client.resolveSecret("TELEGRAM_BOT_TOKEN")).toBe("1:tok");
    const err = await client.resolveSecret("NOPE").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AegisApiError);
    expect((err as AegisApiError).status).toBe(404);
    expect((err as AegisApiError).transient).toBe(false);
  });

  it("posts frames and gets {msg_id, seq}", async () => {
    const r = await client.postFrame({ v: 1, type: "user.message", session, payload: { text: "hi" } });
    expect(r.seq).toBe(1);
    expect(daemon.ingress[0]!.msg_id).toBe(r.msg_id);
    const bad = new UnixTetherClient({ socketPath: sock, instance: "other" });
    expect(((await bad.postFrame({ v: 1, type: "user.message", session, payload: { text: "hi" } }).catch((e: unknown) => e)) as AegisApiError).code).toBe("not_found");
  });

  it("replays frames after after_seq, then streams live ones", async () => {
    daemon.emit(egressFrame("assistant.delta", session, { text: "a" }));
    daemon.emit(egressFrame("assistant.delta", session, { text: "b" }));
    const ctl = new AbortController();
    const seen: number[] = [];
    setTimeout(() => daemon.emit(egressFrame("assistant.done", session, { text: "abc" })), 50);
    for await (const f of client.stream(2, ctl.signal)) {
      seen.push(f.seq);
      if (f.type === "assistant.done") break;
    }
    ctl.abort();
    expect(seen).toEqual([3, 4]);
  });
});

import { afterEach, describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { McpRelay } from "../../../../guest/harness/mcp-relay.ts";
import { LineSplitter, parseMessage, request } from "../../../../src/api/jsonrpc.ts";

const dirs: string[] = [];
const relays: McpRelay[] = [];
afterEach(() => {
  for (const r of relays.splice(0)) r.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Send lines to the bridge socket and collect `n` answers. */
function talk(path: string, lines: string[], n: number): Promise<any[]> {
  return new Promise((resolve, reject) => {
    const got: any[] = [];
    const split = new LineSplitter();
    const sock = createConnection(path, () => {
      for (const l of lines) sock.write(l);
    });
    sock.on("data", (d: Buffer) => {
      for (const l of split.push(d)) got.push(JSON.parse(l));
      if (got.length >= n) {
        sock.end();
        resolve(got);
      }
    });
    sock.on("error", reject);
  });
}

async function relay(send: (line: string, r: McpRelay) => Promise<void>, timeoutMs?: number): Promise<{ r: McpRelay; path: string }> {
  const dir = mkdtempSync(join(tmpdir(), "mr-"));
  dirs.push(dir);
  const path = join(dir, "run", "aegis", "mcp.sock");
  const r: McpRelay = new McpRelay((line) => send(line, r), () => {}, timeoutMs);
  relays.push(r);
  await r.listen(path);
  return { r, path };
}

describe("McpRelay", () => {
  it("creates /run/aegis, relays each request with a fresh id and answers with the caller's id", async () => {
    const sent: any[] = [];
    const { path } = await relay(async (line, r) => {
      const msg = parseMessage(line) as any;
      sent.push(msg);
      queueMicrotask(() => r.deliver(msg.id, msg.method === "mcp.self_info" ? { result: { handle: "me" } } : { error: { code: -32010, message: "denied: no" } }));
    });
    expect(statSync(path).mode & 0o777).toBe(0o666);
    const got = await talk(path, [request("a", "mcp.self_info", {}), request(41, "mcp.instance_spawn", { image: "x" })], 2);
    const byId = Object.fromEntries(got.map((m) => [m.id, m]));
    expect(byId.a).toEqual({ jsonrpc: "2.0", id: "a", result: { handle: "me" } });
    expect(byId[41]).toEqual({ jsonrpc: "2.0", id: 41, error: { code: -32010, message: "denied: no" } });
    expect(sent.map((m) => [m.method, typeof m.id])).toEqual([["mcp.self_info", "number"], ["mcp.instance_spawn", "number"]]);
    expect(sent[1].params).toEqual({ image: "x" });
  });

  it("delivers an answer larger than the socket takes at once whole, after the ones before it", async () => {
    const big = "x".repeat(6 * 1024 * 1024);
    const { path } = await relay(async (line, r) => {
      const msg = parseMessage(line) as any;
      setTimeout(() => r.deliver(msg.id, { result: msg.params.n === 1 ? { big } : { small: true } }), msg.params.n === 1 ? 0 : 200);
    });
    const got = await talk(path, [request("big", "mcp.instance_list", { n: 1 }), request("small", "mcp.instance_list", { n: 2 })], 2);
    expect(got.map((m) => m.id)).toEqual(["big", "small"]);
    expect(got[0].result.big.length).toBe(big.length);
    expect(got[0].result.big).toBe(big);
    expect(got[1].result).toEqual({ small: true });
  });

  it("refuses methods outside the bridge without asking the host", async () => {
    let asked = 0;
    const { path } = await relay(async () => void asked++);
    const [m] = await talk(path, [request(1, "run", { argv: ["sh"] })], 1);
    expect(m.error.code).toBe(-32601);
    expect(asked).toBe(0);
  });

  it("answers unavailable (-32013) when the control port write fails or the host does not answer", async () => {
    const failing = await relay(async () => {
      throw new Error("EPIPE");
    });
    const [a] = await talk(failing.path, [request(1, "mcp.self_info", {})], 1);
    expect(a.error).toMatchObject({ code: -32013, message: "the Aegis host is not reachable (EPIPE)" });
    const silent = await relay(async () => {}, 50);
    const [b] = await talk(silent.path, [request(2, "mcp.self_info", {})], 1);
    expect(b.error.code).toBe(-32013);
  });
});

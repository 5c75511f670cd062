import { afterEach, describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ControlChannel } from "../../../src/vmm/control-channel.ts";
import { LineSplitter, request, RpcError } from "../../../src/api/jsonrpc.ts";

const dirs: string[] = [];
const channels: ControlChannel[] = [];
afterEach(() => {
  for (const c of channels.splice(0)) c.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A channel and a fake guest that sends `lines` and collects the host's answers. */
async function exchange(setup: (ch: ControlChannel) => void, lines: string[], answers: number): Promise<any[]> {
  const dir = mkdtempSync(join(tmpdir(), "ccr-"));
  dirs.push(dir);
  const ch = ControlChannel.listen(join(dir, "ctl.sock"));
  channels.push(ch);
  setup(ch);
  const split = new LineSplitter();
  const got: any[] = [];
  let done!: () => void;
  const all = new Promise<void>((r) => (done = r));
  const sock = await Bun.connect<undefined>({
    unix: ch.path,
    socket: {
      data: (_s, d) => {
        for (const line of split.push(d)) got.push(JSON.parse(line));
        if (got.length >= answers) done();
      },
    },
  });
  for (const l of lines) sock.write(l);
  await all;
  sock.end();
  return got.sort((a, b) => a.id - b.id);
}

describe("ControlChannel guest -> host requests", () => {
  it("answers a request with its handler's result under the guest's id", async () => {
    const got = await exchange((ch) => ch.onRequest("mcp.keepalive_acquire", (p) => ({ until: `in ${p.seconds} s` })), [request(7, "mcp.keepalive_acquire", { seconds: 30 })], 1);
    expect(got).toEqual([{ jsonrpc: "2.0", id: 7, result: { until: "in 30 s" } }]);
  });

  it("turns an RpcError into a JSON-RPC error with its code, message and data, and other throws into internal errors", async () => {
    const got = await exchange(
      (ch) => {
        ch.onRequest("mcp.self_info", () => {
          throw new RpcError(-32010, "denied: no", { code: "denied", hint: "ask the host" });
        });
        ch.onRequest("mcp.instance_list", () => {
          throw new Error("boom");
        });
      },
      [request(1, "mcp.self_info", {}), request(2, "mcp.instance_list", {})],
      2,
    );
    expect(got[0]).toEqual({ jsonrpc: "2.0", id: 1, error: { code: -32010, message: "denied: no", data: { code: "denied", hint: "ask the host" } } });
    expect(got[1].error).toEqual({ code: -32603, message: "mcp.instance_list failed: boom" });
  });

  it("refuses invalid params and unserved methods without calling a handler", async () => {
    let called = 0;
    const got = await exchange(
      (ch) => ch.onRequest("mcp.expose_port", () => ++called),
      [request(1, "mcp.expose_port", { port: 70000 }), request(2, "mcp.instance_spawn", {}), request(3, "run", { id: "x", argv: ["sh"] })],
      3,
    );
    expect(got.map((m) => m.error.code)).toEqual([-32602, -32601, -32601]);
    expect(called).toBe(0);
  });
});

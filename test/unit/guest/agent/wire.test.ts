import { afterEach, describe, expect, it } from "bun:test";
import { connect, type Socket } from "node:net";
import { egressFrame, type TetherIngress } from "../../../../src/api/schema/tether.ts";
import { TetherWire } from "../../../../guest/agent/wire.ts";

const quiet = { info: () => {}, warn: () => {}, error: () => {} };
const session = { channel: "test", id: "1" };
const open: { close(): unknown }[] = [];
afterEach(async () => {
  for (const o of open.splice(0)) await o.close();
});

/** A harness stand-in: collects the lines the agent writes. */
async function client(port: number): Promise<{ sock: Socket; lines: string[] }> {
  const sock = connect(port, "127.0.0.1");
  open.push({ close: () => sock.destroy() });
  const lines: string[] = [];
  let buf = "";
  sock.setEncoding("utf8");
  sock.on("data", (d: string) => {
    buf += d;
    const parts = buf.split("\n");
    buf = parts.pop()!;
    lines.push(...parts);
  });
  await new Promise((r) => sock.once("connect", r));
  await Bun.sleep(20);
  return { sock, lines };
}

async function wire(received: TetherIngress[] = []): Promise<{ w: TetherWire; port: number }> {
  const w = new TetherWire({ host: "127.0.0.1", port: 0, onFrame: (f) => received.push(f), log: quiet });
  open.push(w);
  return { w, port: await w.listen() };
}

describe("TetherWire", () => {
  it("buffers frames until a harness connects, then flushes them in order", async () => {
    const { w, port } = await wire();
    w.send(egressFrame("status.presence", session, { state: "idle" }));
    w.send(egressFrame("assistant.delta", session, { text: "a" }));
    expect(w.buffered).toBe(2);
    const c = await client(port);
    await Bun.sleep(30);
    expect(c.lines.map((l) => JSON.parse(l).type)).toEqual(["status.presence", "assistant.delta"]);
    expect(w.buffered).toBe(0);
  });

  it("writes to the most recent live connection and falls back when it closes", async () => {
    const { w, port } = await wire();
    const a = await client(port);
    const b = await client(port);
    w.send(egressFrame("assistant.delta", session, { text: "1" }));
    await Bun.sleep(30);
    expect([a.lines.length, b.lines.length]).toEqual([0, 1]);
    b.sock.destroy();
    await Bun.sleep(30);
    w.send(egressFrame("assistant.delta", session, { text: "2" }));
    await Bun.sleep(30);
    expect(a.lines.map((l) => JSON.parse(l).payload.text)).toEqual(["2"]);
  });

  it("accepts frames split across packets from any connection and skips invalid lines", async () => {
    const received: TetherIngress[] = [];
    const { port } = await wire(received);
    const a = await client(port);
    const line = JSON.stringify({ v: 1, type: "user.message", session, payload: { text: "hi" } });
    a.sock.write(line.slice(0, 10));
    await Bun.sleep(10);
    a.sock.write(`${line.slice(10)}\nnot json\n${JSON.stringify({ v: 1, type: "assistant.delta", session, payload: { text: "x" } })}\n`);
    const b = await client(port);
    b.sock.write(`${JSON.stringify({ v: 1, type: "control.cancel", session, payload: {} })}\n`);
    await Bun.sleep(50);
    expect(received.map((f) => f.type)).toEqual(["user.message", "control.cancel"]);
  });
});

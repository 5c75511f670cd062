import { afterEach, describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Socket } from "bun";
import { ChannelClosedError, ChannelTimeoutError, ControlChannel } from "../../../src/vmm/control-channel.ts";
import { runInGuest } from "../../../src/vmm/guest-process.ts";
import { LineSplitter, notification, response } from "../../../src/api/jsonrpc.ts";

/** A stand-in for QEMU's chardev client + the harness: connects to the channel and answers with `reply`. */
async function fakeGuest(path: string, reply: (msg: any, send: (line: string) => void) => void): Promise<Socket<undefined>> {
  const split = new LineSplitter();
  let sock!: Socket<undefined>;
  sock = await Bun.connect<undefined>({
    unix: path,
    socket: {
      data: (_s, d) => {
        for (const line of split.push(d)) reply(JSON.parse(line), (l) => sock.write(l));
      },
    },
  });
  return sock;
}

const dirs: string[] = [];
const channels: ControlChannel[] = [];
function channel(): ControlChannel {
  const dir = mkdtempSync(join(tmpdir(), "cc-"));
  dirs.push(dir);
  const ch = ControlChannel.listen(join(dir, "ctl.sock"));
  channels.push(ch);
  return ch;
}
afterEach(() => {
  for (const c of channels.splice(0)) c.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("ControlChannel", () => {
  it("listens before the peer connects and resolves waitReady on the ready notification", async () => {
    const ch = channel();
    const ready = ch.waitReady(5000);
    const g = await fakeGuest(ch.path, () => {});
    g.write(notification("ready", { version: "1.2.3", uptime_ms: 42 }));
    expect(await ready).toEqual({ version: "1.2.3", uptime_ms: 42 });
    expect(await ch.waitReady()).toEqual({ version: "1.2.3", uptime_ms: 42 });
  });

  it("buffers calls made before the peer connects and validates results", async () => {
    const ch = channel();
    const pong = ch.call("ping", undefined, { timeoutMs: 5000 });
    await fakeGuest(ch.path, (m, send) => send(response(m.id, { uptime_ms: 7 })));
    expect(await pong).toEqual({ uptime_ms: 7 });
  });

  it("rejects with the guest's JSON-RPC error", async () => {
    const ch = channel();
    await fakeGuest(ch.path, (m, send) => send(`${JSON.stringify({ jsonrpc: "2.0", id: m.id, error: { code: -32001, message: "no running process with id x" } })}\n`));
    await expect(ch.call("signal", { id: "x", signal: "SIGTERM" })).rejects.toThrow("signal: no running process with id x");
  });

  it("times out calls the guest never answers", async () => {
    const ch = channel();
    await fakeGuest(ch.path, () => {});
    await expect(ch.call("ping", undefined, { timeoutMs: 50 })).rejects.toBeInstanceOf(ChannelTimeoutError);
  });

  it("rejects pending calls when the peer disconnects, and all calls after close", async () => {
    const ch = channel();
    const g = await fakeGuest(ch.path, () => {});
    const p = ch.call("ping", undefined, { timeoutMs: 5000 });
    await Bun.sleep(20);
    g.end();
    await expect(p).rejects.toBeInstanceOf(ChannelClosedError);
    ch.close();
    await expect(ch.call("ping")).rejects.toBeInstanceOf(ChannelClosedError);
  });

  it("delivers a process's output in order before its exit (runInGuest)", async () => {
    const ch = channel();
    await fakeGuest(ch.path, (m, send) => {
      if (m.method !== "run") return;
      send(response(m.id, { pid: 99 }));
      for (let i = 0; i < 100; i++) send(notification("output", { id: m.params.id, stream: "stdout", data: Buffer.from(`${i}\n`).toString("base64") }));
      send(notification("output", { id: m.params.id, stream: "stderr", data: Buffer.from([0, 255]).toString("base64") }));
      send(notification("output", { id: "someone-else", stream: "stdout", data: "eA==" }));
      send(notification("exit", { id: m.params.id, code: 3 }));
    });
    const r = await runInGuest(ch, { argv: ["x"] });
    expect(r.code).toBe(3);
    expect(r.stdout.toString()).toBe(Array.from({ length: 100 }, (_, i) => `${i}\n`).join(""));
    expect([...r.stderr]).toEqual([0, 255]);
  });
});

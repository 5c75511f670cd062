/**
 * Live restore over the control channel: the harness's replay ring
 * (guest/harness/replay.ts) against the host channel, across a host that
 * goes away and a new one that adopts the VM. Real unix sockets; the guest
 * side is the real ReplayRing behind a small stand-in for QEMU's chardev.
 */
import { afterEach, describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Socket } from "bun";
import { ControlChannel, readSeqFile } from "../../../src/vmm/control-channel.ts";
import { LineSplitter, response } from "../../../src/api/jsonrpc.ts";
import { ReplayRing } from "../../../guest/harness/replay.ts";

const dirs: string[] = [];
const channels: ControlChannel[] = [];
afterEach(() => {
  for (const c of channels.splice(0)) c.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** The guest: a ring whose lines go to whichever host socket is connected (dropped when none, as bytes in a dead daemon's buffer are). */
class Guest {
  sock: Socket<undefined> | null = null;
  readonly ring = new ReplayRing(async (line) => {
    this.sock?.write(line);
  }, 4096);
  async connect(path: string): Promise<void> {
    const split = new LineSplitter();
    this.sock = await Bun.connect<undefined>({
      unix: path,
      socket: {
        data: (s, d) => {
          for (const line of split.push(d)) {
            const m = JSON.parse(line);
            if (m.method === "ack") this.ring.ack(m.params.seq);
            if (m.method === "resume") s.write(response(m.id, this.ring.after(m.params.after_seq)));
          }
        },
      },
    });
  }
  output(text: string): Promise<void> {
    return this.ring.send("output", { id: "main", stream: "stdout", data: Buffer.from(text).toString("base64") });
  }
}

function listen(dir: string, adopt: boolean): { ch: ControlChannel; got: string[] } {
  const ch = ControlChannel.listen(join(dir, "ctl.sock"), () => undefined, { seqFile: join(dir, "ctl.seq"), adopt });
  channels.push(ch);
  const got: string[] = [];
  ch.onNotification("output", (p) => got.push(Buffer.from(p.data, "base64").toString()));
  return { ch, got };
}

async function until(what: string, ok: () => boolean): Promise<void> {
  const deadline = Date.now() + 3000;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(5);
  }
}

describe("control channel replay", () => {
  it("a new host resumes after the last seq the old one handled: nothing lost, nothing twice", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cr-"));
    dirs.push(dir);
    const guest = new Guest();
    const first = listen(dir, false);
    await guest.connect(first.ch.path);
    for (const t of ["a", "b", "c"]) await guest.output(t);
    await until("the first host to handle 3 lines", () => first.got.length === 3);
    expect(readSeqFile(join(dir, "ctl.seq"))).toBe(3);
    // The host dies: what the guest writes now is lost in transit (but still held by its ring).
    first.ch.close();
    guest.sock?.end();
    guest.sock = null;
    for (const t of ["d", "e"]) await guest.output(t);
    const second = listen(dir, true);
    expect(second.ch.handledSeq).toBe(3);
    await guest.connect(second.ch.path);
    await second.ch.waitConnected(2000);
    // What the guest sends before the new host asked to resume is held for the replay, not handled unsubscribed.
    await guest.output("e2");
    await Bun.sleep(30);
    expect(second.got).toEqual([]);
    // A write that was blocked while the host was away arrives before the resume answer: ignored, it is in the answer.
    expect(await second.ch.resume(2000)).toBe(3);
    await guest.output("f");
    await until("the second host to see f", () => second.got.includes("f"));
    expect(first.got).toEqual(["a", "b", "c"]);
    expect(second.got).toEqual(["d", "e", "e2", "f"]);
    // Acknowledged: the ring forgets what the host handled.
    await until("the ack", () => guest.ring.heldBytes === 0);
  });

  it("handles a line the guest sends right after its resume answer, in the same read, exactly once (found by the chaos test)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cr-"));
    dirs.push(dir);
    const guest = new Guest();
    const first = listen(dir, false);
    await guest.connect(first.ch.path);
    await guest.output("a");
    await until("a", () => first.got.length === 1);
    first.ch.close();
    guest.sock?.end();
    guest.sock = null;
    await guest.output("b");
    const second = listen(dir, true);
    // This guest answers `resume` and writes its next live line in one write, as a busy harness does.
    const split = new LineSplitter();
    guest.sock = await Bun.connect<undefined>({
      unix: second.ch.path,
      socket: {
        data: (s, d) => {
          for (const line of split.push(d)) {
            const m = JSON.parse(line);
            if (m.method === "ack") guest.ring.ack(m.params.seq);
            if (m.method !== "resume") continue;
            const answer = response(m.id, guest.ring.after(m.params.after_seq));
            const live = `${JSON.stringify({ jsonrpc: "2.0", method: "output", params: { id: "main", stream: "stdout", data: Buffer.from("c").toString("base64"), seq: 3 } })}\n`;
            s.write(answer + live);
          }
        },
      },
    });
    await second.ch.waitConnected(2000);
    expect(await second.ch.resume(2000)).toBe(1);
    await until("c", () => second.got.length === 2);
    await Bun.sleep(30);
    expect(second.got).toEqual(["b", "c"]);
    expect(second.ch.handledSeq).toBe(3);
  });

  it("drops a seq it has handled already", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cr-"));
    dirs.push(dir);
    const { ch, got } = listen(dir, false);
    const guest = new Guest();
    await guest.connect(ch.path);
    await guest.output("x");
    await until("x", () => got.length === 1);
    guest.sock!.write(`${JSON.stringify({ jsonrpc: "2.0", method: "output", params: { id: "main", stream: "stdout", data: "eA==", seq: 1 } })}\n`);
    await guest.output("y");
    await until("y", () => got.length === 2);
    expect(got).toEqual(["x", "y"]);
  });

  it("holds senders back once the ring is full until the host acknowledges", async () => {
    const lines: string[] = [];
    const ring = new ReplayRing(async (l) => void lines.push(l), 400);
    await ring.send("output", { id: "p", stream: "stdout", data: "A".repeat(150) });
    await ring.send("output", { id: "p", stream: "stdout", data: "B".repeat(150) });
    let third = false;
    const pending = ring.send("output", { id: "p", stream: "stdout", data: "C" }).then(() => {
      third = true;
    });
    await Bun.sleep(20);
    expect(third).toBe(false);
    expect(lines.length).toBe(2);
    ring.ack(2);
    await pending;
    expect(third).toBe(true);
    expect(ring.after(0).replay.map((e) => e.params.seq)).toEqual([3]);
  });
});

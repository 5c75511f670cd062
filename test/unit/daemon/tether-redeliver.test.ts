/**
 * Tether ingress survives aegisd dying between the 202 and the delivery:
 * frames stored but never written to the guest's control channel are
 * delivered, in order and once, to the next VM that boots (or is
 * re-adopted), and a frame once written is not delivered again. Real
 * services and registry; the VMs are the fake backend's (helpers/mcp-env.ts).
 */
import { expect, it } from "bun:test";
import { TetherStore } from "../../../src/daemon/tether/store.ts";
import { mcpEnv } from "../../helpers/mcp-env.ts";

const frame = (text: string, msg_id: string) => ({ v: 1 as const, type: "user.message" as const, msg_id, ts: new Date().toISOString(), session: { channel: "test", id: "1" }, payload: { text } });

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(10);
  }
}

const tetherSeqs = (notes: { method: string; params: any }[]) => notes.filter((n) => n.method === "tether.frame").map((n) => n.params.frame.seq as number);

it("delivers stored-but-undelivered ingress frames to the next VM, in order, once; delivered ones never again", async () => {
  await using env = mcpEnv();
  const top = await env.top({ name: "agent" });
  const store = new TetherStore(env.services.db);

  // Delivered by this daemon: recorded as handed over.
  const first = env.services.tether.ingress(top.id, frame("one", "m-1"));
  await until(() => tetherSeqs(top.guest.notifications).length === 1, "the first frame");
  expect(tetherSeqs(top.guest.notifications)).toEqual([first.seq]);
  await until(() => store.deliveredSeq(top.id) === first.seq, "the delivery record");

  // Two frames stored while "aegisd died" before delivering them (stored with 202, never written).
  await env.services.instances.stop(top.id);
  const lost = [store.append(top.id, "ingress", frame("two", "m-2")), store.append(top.id, "ingress", frame("three", "m-3"))];
  expect(store.deliveredSeq(top.id)).toBe(first.seq);

  // The next VM gets exactly those, in order, and the record moves on.
  await env.services.instances.start(top.id);
  const next = env.guest(top.id);
  await until(() => tetherSeqs(next.notifications).length === 2, "the redelivered frames");
  expect(tetherSeqs(next.notifications)).toEqual(lost.map((f) => f.seq));
  expect(next.notifications.filter((n) => n.method === "tether.frame").map((n) => n.params.frame.msg_id)).toEqual(["m-2", "m-3"]);
  await until(() => store.deliveredSeq(top.id) === lost[1]!.seq, "the delivery record");

  // A new frame after them: delivered once; a retried msg_id is not delivered again.
  const fourth = env.services.tether.ingress(top.id, frame("four", "m-4"));
  expect(env.services.tether.ingress(top.id, frame("four", "m-4"))).toEqual(fourth);
  await until(() => tetherSeqs(next.notifications).length === 3, "the fourth frame");
  await Bun.sleep(100);
  expect(tetherSeqs(next.notifications)).toEqual([...lost.map((f) => f.seq), fourth.seq]);

  // Another boot: nothing left to deliver.
  await env.services.instances.stop(top.id);
  await env.services.instances.start(top.id);
  await Bun.sleep(200);
  expect(tetherSeqs(env.guest(top.id).notifications)).toEqual([]);
  expect(env.logLines.some((l) => l.includes("tether frames delivered again"))).toBe(true);
});

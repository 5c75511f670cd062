import { describe, expect, it } from "bun:test";
import { z } from "zod";
import {
  completeFrame,
  directionOf,
  egressFrame,
  GUEST_TO_HOST_TYPES,
  HOST_TO_GUEST_TYPES,
  TetherEgressFrame,
  TetherFrame,
  TetherIngress,
  TetherStreamQuery,
} from "../../../../src/api/schema/tether.ts";

const session = { channel: "telegram", id: "123456" };

describe("tether frames", () => {
  it("accepts the spec's curl example as ingress", () => {
    const r = TetherIngress.safeParse({ v: 1, type: "user.message", session: { channel: "test", id: "1" }, payload: { text: "Hello!" } });
    expect(r.success).toBe(true);
  });

  it("accepts the spec's full envelope with user identity", () => {
    const frame = {
      v: 1,
      type: "user.message",
      ts: "2026-02-22T00:00:00.000Z",
      session,
      msg_id: "abc",
      seq: 1,
      payload: { text: "Hello!", user: { id: "123", username: "johndoe", name: "John" } },
    };
    expect(TetherFrame.parse(frame)).toEqual(frame as never);
  });

  it("rejects unknown types, guest -> host types on ingress, unknown fields and bad payloads", () => {
    const base = { v: 1, session, payload: { text: "x" } };
    expect(TetherIngress.safeParse({ ...base, type: "user.shout" }).success).toBe(false);
    expect(TetherIngress.safeParse({ ...base, type: "assistant.delta" }).success).toBe(false);
    expect(TetherIngress.safeParse({ ...base, type: "user.message", extra: 1 }).success).toBe(false);
    expect(TetherIngress.safeParse({ ...base, type: "user.message", payload: { text: "" } }).success).toBe(false);
    expect(TetherIngress.safeParse({ ...base, type: "user.message", v: 2 }).success).toBe(false);
    expect(TetherIngress.safeParse({ ...base, type: "user.message", session: { channel: "t" } }).success).toBe(false);
    expect(TetherIngress.safeParse({ ...base, type: "user.message", ts: "yesterday" }).success).toBe(false);
    expect(TetherIngress.safeParse({ ...base, type: "control.cancel", payload: {} }).success).toBe(true);
  });

  it("validates each guest -> host payload", () => {
    const ok = (type: string, payload: unknown) => TetherEgressFrame.safeParse({ v: 1, type, ts: new Date().toISOString(), session, msg_id: "m", seq: 3, payload }).success;
    expect(ok("assistant.delta", { text: "hi" })).toBe(true);
    expect(ok("assistant.done", { text: "hi", error: { code: "cancelled", message: "cancelled" } })).toBe(true);
    expect(ok("assistant.done", { text: "hi", error: { code: "x" } })).toBe(false);
    expect(ok("status.presence", { state: "typing" })).toBe(true);
    expect(ok("status.presence", { state: "sleeping" })).toBe(false);
    expect(ok("event.ack", { msg_id: "u1" })).toBe(true);
    expect(ok("event.ack", {})).toBe(false);
    expect(ok("user.message", { text: "hi" })).toBe(false);
  });

  it("splits the six types into the two directions", () => {
    expect([...HOST_TO_GUEST_TYPES]).toEqual(["user.message", "control.cancel"]);
    expect([...GUEST_TO_HOST_TYPES]).toEqual(["assistant.delta", "assistant.done", "status.presence", "event.ack"]);
    expect(directionOf("control.cancel")).toBe("ingress");
    expect(directionOf("event.ack")).toBe("egress");
  });

  it("fills msg_id, ts and seq, keeping a client's msg_id and ts", () => {
    const draft = TetherIngress.parse({ v: 1, type: "user.message", session, payload: { text: "x" } });
    const filled = completeFrame(draft, { seq: 7, now: new Date("2026-01-01T00:00:00Z") });
    expect(filled.seq).toBe(7);
    expect(filled.ts).toBe("2026-01-01T00:00:00.000Z");
    expect(filled.msg_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(TetherFrame.safeParse(filled).success).toBe(true);
    const kept = completeFrame({ ...draft, msg_id: "mine", ts: "2025-05-05T00:00:00Z" }, { seq: 8 });
    expect([kept.msg_id, kept.ts, kept.seq]).toEqual(["mine", "2025-05-05T00:00:00Z", 8]);
  });

  it("builds egress frames that carry reply_to", () => {
    const f = egressFrame("assistant.delta", session, { text: "a" }, "u1");
    expect(f.reply_to).toBe("u1");
    expect(TetherEgressFrame.safeParse({ ...f, seq: 1 }).success).toBe(true);
  });

  it("parses after_seq and exports JSON Schema", () => {
    expect(TetherStreamQuery.parse({ after_seq: "12" })).toEqual({ after_seq: 12 });
    expect(TetherStreamQuery.safeParse({ after_seq: "-1" }).success).toBe(false);
    expect(JSON.stringify(z.toJSONSchema(TetherIngress))).toContain("user.message");
  });
});

import { describe, expect, it } from "bun:test";
import { idleAction } from "../../../src/daemon/instances/idle.ts";

const base = { pauseAfterS: 60, stopAfterS: 1200, busy: false } as const;

describe("idleAction", () => {
  it("pauses a running instance after pause_after_s idle seconds, then stops it with a snapshot", () => {
    expect(idleAction({ ...base, state: "running", idleS: 59 }, true)).toBeNull();
    expect(idleAction({ ...base, state: "running", idleS: 60 }, true)).toBe("pause");
    expect(idleAction({ ...base, state: "paused", idleS: 1259 }, true)).toBeNull();
    expect(idleAction({ ...base, state: "paused", idleS: 1260 }, true)).toBe("snapshot-stop");
  });
  it("never acts on a busy instance (open connections, exec, tether, keepalive)", () => {
    expect(idleAction({ ...base, state: "running", idleS: 1e6, busy: true }, true)).toBeNull();
    expect(idleAction({ ...base, state: "paused", idleS: 1e6, busy: true }, true)).toBeNull();
  });
  it("treats 0 as never", () => {
    expect(idleAction({ ...base, pauseAfterS: 0, state: "running", idleS: 1e6 }, true)).toBeNull();
    expect(idleAction({ ...base, stopAfterS: 0, state: "paused", idleS: 1e6 }, true)).toBeNull();
  });
  it("stops without a snapshot when the backend cannot pause", () => {
    expect(idleAction({ ...base, state: "running", idleS: 100 }, false)).toBeNull();
    expect(idleAction({ ...base, state: "running", idleS: 1260 }, false)).toBe("stop");
  });
});

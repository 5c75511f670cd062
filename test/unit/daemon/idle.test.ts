/**
 * The idle policy as an operator sees it: when an idle instance is paused,
 * when it is stopped (with or without a snapshot), and that 0 means never on
 * both backends (one that can pause, one that cannot).
 */
import { describe, expect, it } from "bun:test";
import type { InstanceState } from "../../../src/api/schema/instances.ts";
import { idleAction } from "../../../src/daemon/instances/idle.ts";

const base = { pauseAfterS: 60, stopAfterS: 1200, busy: false } as const;
type Over = Partial<{ state: InstanceState; pauseAfterS: number; stopAfterS: number; idleS: number; busy: boolean }>;
const on = (over: Over, canPause: boolean) => idleAction({ ...base, state: "running", idleS: 0, ...over }, canPause);

describe("idleAction on a backend that can pause", () => {
  it("pauses a running instance exactly at pause_after_s idle seconds, not a second before", () => {
    expect(on({ idleS: 59 }, true)).toBeNull();
    expect(on({ idleS: 60 }, true)).toBe("pause");
    expect(on({ idleS: 61 }, true)).toBe("pause");
  });
  it("stops a paused instance with a snapshot exactly at pause_after_s + stop_after_s", () => {
    expect(on({ state: "paused", idleS: 1259 }, true)).toBeNull();
    expect(on({ state: "paused", idleS: 1260 }, true)).toBe("snapshot-stop");
    expect(on({ state: "paused", idleS: 5000 }, true)).toBe("snapshot-stop");
  });
  it("never stops a running instance itself: it pauses first, even long past the sum", () => {
    expect(on({ idleS: 1e6 }, true)).toBe("pause");
  });
  it("never pauses when pause_after_s is 0 (so it never reaches the snapshot stop either)", () => {
    for (const idleS of [0, 1, 60, 1260, 1e6]) expect(on({ pauseAfterS: 0, idleS }, true)).toBeNull();
  });
  it("keeps a paused instance paused forever when stop_after_s is 0", () => {
    for (const idleS of [0, 60, 1260, 1e6]) expect(on({ stopAfterS: 0, state: "paused", idleS }, true)).toBeNull();
  });
  it("still pauses when only stop_after_s is 0", () => {
    expect(on({ stopAfterS: 0, idleS: 60 }, true)).toBe("pause");
  });
});

describe("idleAction on a backend that cannot pause", () => {
  it("stops (no snapshot) a running instance at pause_after_s + stop_after_s, not before", () => {
    expect(on({ idleS: 60 }, false)).toBeNull();
    expect(on({ idleS: 1259 }, false)).toBeNull();
    expect(on({ idleS: 1260 }, false)).toBe("stop");
    expect(on({ idleS: 1e6 }, false)).toBe("stop");
  });
  it("never stops an instance when stop_after_s is 0, however long it idles", () => {
    for (const idleS of [0, 60, 1260, 1e6]) expect(on({ stopAfterS: 0, idleS }, false)).toBeNull();
  });
  it("counts stop_after_s alone when pause_after_s is 0", () => {
    expect(on({ pauseAfterS: 0, idleS: 1199 }, false)).toBeNull();
    expect(on({ pauseAfterS: 0, idleS: 1200 }, false)).toBe("stop");
  });
});

describe("idleAction and instance state", () => {
  it("never acts on a busy instance (open connections, exec, tether, keepalive)", () => {
    for (const canPause of [true, false]) {
      expect(on({ idleS: 1e6, busy: true }, canPause)).toBeNull();
      expect(on({ state: "paused", idleS: 1e6, busy: true }, canPause)).toBeNull();
    }
  });
  it("leaves instances that are starting, stopping, stopped or failed alone", () => {
    for (const state of ["starting", "stopping", "stopped", "failed"] as const) {
      for (const canPause of [true, false]) expect(on({ state, idleS: 1e6 }, canPause)).toBeNull();
    }
  });
});

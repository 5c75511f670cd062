import { expect, it } from "bun:test";
import { WakeTrace } from "../../../src/daemon/instances/wake-trace.ts";
import { wakeDurations } from "../../../bench/_wake.ts";

it("reports phase ends in ms since the wake began, earliest first, the backend's marks prefixed vm.", () => {
  const t = new WakeTrace();
  const t0 = t.startedAt;
  t.mark("running", t0 + 30);
  t.markAll({ spawned: t0 + 5, clockSet: t0 + 20.04 });
  t.mark("queued", t0 + 1);
  expect(t.phases()).toEqual({ queued: 1, "vm.spawned": 5, "vm.clockSet": 20, running: 30 });
  expect(Object.keys(t.phases())).toEqual(["queued", "vm.spawned", "vm.clockSet", "running"]);
  expect(t.booted).toBeNull();
});

it("turns the logged phase ends into durations, the router's share being the client's time to first byte after portReady", () => {
  const d = wakeDurations({ instance: "i", how: "restored", ms: { queued: 1, "vm.spawned": 5, portReady: 40 } }, 100);
  expect(d).toEqual({ "wake decision (ensureRunning's turn)": 1, "QEMU args + spawn": 4, "guest port accepts (port.wait)": 35, "router: accept + upstream connect + first byte": 60 });
});

import { expect, it } from "bun:test";
import { budgetSpent, CPU_SHARE, HARD_FACTOR, processCpuMs } from "../../../src/vmm/boot-watchdog.ts";

it("fires once the wall budget passed and QEMU had its share of CPU", () => {
  expect(budgetSpent(19_999, 20_000, 20_000)).toBe(false);
  expect(budgetSpent(20_000, CPU_SHARE * 20_000, 20_000)).toBe(true);
});

it("waits on while a loaded host starves QEMU of CPU, up to the hard cap", () => {
  expect(budgetSpent(60_000, 5_000, 20_000)).toBe(false);
  expect(budgetSpent(HARD_FACTOR * 20_000 - 1, 0, 20_000)).toBe(false);
  expect(budgetSpent(HARD_FACTOR * 20_000, 0, 20_000)).toBe(true);
});

it("reads a process's CPU time, and none for a process that is gone", () => {
  const t = Date.now();
  while (Date.now() - t < 60) {} // burn a little CPU so the count is above zero
  expect(processCpuMs(process.pid)).toBeGreaterThan(0);
  expect(processCpuMs(2 ** 22 + 1)).toBeUndefined();
});

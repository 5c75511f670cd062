import { describe, expect, it } from "bun:test";
import { parseBaselineUptime, parseBootPhases } from "../../../bench/_phases.ts";
import { row } from "../../../bench/summary.ts";
import { smapsRollup } from "../../../bench/density.ts";

const consoleText = [
  "[    0.000000] Linux version 6.1.0",
  "aegis-init: /init at 1.30 s, modules loaded at 1.55 s, exec harness at 1.62 s",
  "aegis-harness: since exec: imports 700 ms, main 720 ms, port 900 ms, ready 905 ms",
  "aegis-harness: ready: guest uptime at harness main 2450 ms, setup 2452-2600 ms, ready 2610 ms",
].join("\n");

describe("parseBootPhases", () => {
  it("splits a cold boot into phases that add up to spawn -> ready", () => {
    const p = parseBootPhases(consoleText, 3400)!;
    expect(p).toEqual({ qemuAndDecompress: 790, kernelToInit: 1300, moduleLoading: 250, toolsMount: 70, harnessLoad: 830, harnessSetup: 150, portAndReady: 10 });
    expect(Object.values(p).reduce((a, b) => a + b, 0)).toBeCloseTo(3400, 6);
  });

  it("adds the handlers' load after ready when the harness reports it", () => {
    const p = parseBootPhases(`${consoleText}\naegis-harness: serving: handlers installed at guest uptime 2990 ms`, 3400)!;
    expect(p.handlersLoad).toBe(380);
    expect(p.portAndReady).toBe(10);
  });

  it("gives undefined when a line is missing, and reads the baseline's uptime", () => {
    expect(parseBootPhases(consoleText.split("\n").slice(0, 2).join("\n"), 3400)).toBeUndefined();
    expect(parseBaselineUptime("x\naegis-baseline: uptime 1.25 s\n")).toBe(1250);
    expect(parseBaselineUptime("nothing")).toBeUndefined();
  });
});

describe("summary rows", () => {
  const base = { name: "bare", value: 2000 };
  it("computes ratios and differences against the same-run baseline and judges the target", () => {
    expect(row("f", "boot", 2800, "ms", base, { kind: "ratio-max", limit: 1.5 })).toMatchObject({ ratio: 1.4, met: true });
    expect(row("f", "boot", 3200, "ms", base, { kind: "ratio-max", limit: 1.5 })).toMatchObject({ ratio: 1.6, met: false });
    expect(row("f", "router", 1700, "req/s", base, { kind: "ratio-min", limit: 0.9 })).toMatchObject({ ratio: 0.85, met: false });
    expect(row("f", "router", 2040, "us", base, { kind: "diff-max", limit: 50 })).toMatchObject({ ratio: 40, met: true, target: "<= +50 us" });
    expect(row("f", "density", 70, "MB", { name: "rss", value: 300 }, { kind: "value-max", limit: 64 })).toMatchObject({ met: false });
  });

  it("reports a figure whose benchmark did not run as not measured", () => {
    expect(row("f", "density", undefined, "MB", undefined, { kind: "value-max", limit: 64 })).toMatchObject({ value: null, ratio: null, met: null });
  });
});

describe("smapsRollup", () => {
  it("reads USS as private clean + dirty, PSS and RSS in MB", () => {
    const t = "Rss:  204800 kB\nPss:  102400 kB\nPrivate_Clean:  1024 kB\nPrivate_Dirty:  50176 kB\n";
    expect(smapsRollup(t)).toEqual({ uss: 50, pss: 100, rss: 200 });
  });
});

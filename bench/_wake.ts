/**
 * @module bench/_wake
 * The phases of an instance's wake as aegisd logs them (`instance wake`,
 * src/daemon/instances/wake-trace.ts: phase ends in ms since the router's
 * wake began) turned into durations, plus the share the daemon cannot see:
 * the client's time to first byte minus the guest port being ready (the
 * router accepting the request before the wake, its upstream connect, the
 * guest server's answer and the relay back).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** One `instance wake` line. */
export interface WakeLine {
  instance: string;
  how: "restored" | "booted";
  ms: Record<string, number>;
}

/** The `instance wake` lines in `home`'s aegisd.log for instance `id`, oldest first. */
export function wakeLines(home: string, id: string): WakeLine[] {
  const path = join(home, "data", "aegisd.log");
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l.includes('"msg":"instance wake"'))
    .map((l) => JSON.parse(l) as WakeLine & { msg: string })
    .filter((l) => l.instance === id);
}

/** Readable names of the logged phase ends, in wake order (a phase is the time since the previous one). */
const NAMES: Record<string, string> = {
  queued: "wake decision (ensureRunning's turn)",
  image: "image resolve",
  ports: "host ports chosen",
  "vm.checked": "snapshot checked (metadata, disk stamps)",
  "vm.network": "VM network set-up",
  "vm.spawned": "QEMU args + spawn",
  "vm.qmpConnected": "QEMU start -> QMP",
  "vm.migrationLoaded": "incoming migration load",
  "vm.resumed": "guest resume (cont)",
  "vm.firstPing": "first harness answer",
  "vm.clockSet": "guest clock set",
  "vm.setup": "setup RPC (template start)",
  launched: "daemon: launch done",
  snapshotRemoved: "consumed snapshot removed",
  running: "daemon: instance marked running",
  portReady: "guest port accepts (port.wait)",
};

/** Duration of each phase of one wake (ms), in order, with the router's share last. */
export function wakeDurations(line: WakeLine, ttfbMs: number): Record<string, number> {
  const out: Record<string, number> = {};
  let prev = 0;
  for (const [k, at] of Object.entries(line.ms)) {
    out[NAMES[k] ?? k] = Math.round((at - prev) * 10) / 10;
    prev = at;
  }
  out["router: accept + upstream connect + first byte"] = Math.round((ttfbMs - prev) * 10) / 10;
  return out;
}

/** Median of each phase over several wakes (phases missing from some wakes are left out). */
export function medianPhases(xs: Record<string, number>[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of Object.keys(xs[0] ?? {})) {
    const v = xs.map((x) => x[k]).filter((n): n is number => n !== undefined).sort((a, b) => a - b);
    if (v.length === xs.length) out[k] = v[Math.floor((v.length - 1) / 2)]!;
  }
  return out;
}

/** One line per phase: `  name  12.3 ms`. */
export function phaseTable(phases: Record<string, number>): string {
  const w = Math.max(0, ...Object.keys(phases).map((k) => k.length));
  return Object.entries(phases)
    .map(([k, v]) => `  ${k.padEnd(w)}  ${v.toFixed(1)} ms`)
    .join("\n");
}

/**
 * @module daemon/instances/wake-trace
 * Where one wake of an instance goes: the router's connection (or any other
 * caller of `ensureRunning`) starts a trace, the lifecycle and the backend
 * mark the end of each phase on the daemon's own clock (`performance.now()`,
 * the clock QemuVm.bootMarks uses too), and the router logs the phases as
 * `instance wake` once the guest port accepts. bench/lifecycle.ts and
 * bench/wake.ts read that line back from aegisd.log. Names and numbers only:
 * nothing from the guest is logged.
 */

/** Phase ends of one wake, in ms since it began (rounded to 0.1 ms), in time order. */
export type WakePhases = Record<string, number>;

/** One wake being traced. */
export class WakeTrace {
  /** When the wake began (`performance.now()`). */
  readonly startedAt = performance.now();
  private readonly marks = new Map<string, number>();
  /** Set once the wake booted or restored a VM (a running instance needs no trace). */
  booted: "restored" | "booted" | null = null;

  /** Record that phase `name` ended now (or at `at`, a `performance.now()` value). */
  mark(name: string, at = performance.now()): void {
    this.marks.set(name, at);
  }

  /** Record a backend's phase ends (`Vm.bootMarks`), each prefixed `vm.`. */
  markAll(marks: Readonly<Record<string, number>> | undefined): void {
    for (const [name, at] of Object.entries(marks ?? {})) this.mark(`vm.${name}`, at);
  }

  /** Every phase end so far, in ms since the wake began, earliest first. */
  phases(): WakePhases {
    const out: WakePhases = {};
    for (const [name, at] of [...this.marks].sort((a, b) => a[1] - b[1])) out[name] = Math.round((at - this.startedAt) * 10) / 10;
    return out;
  }
}

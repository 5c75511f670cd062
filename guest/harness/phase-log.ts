/**
 * @module guest/harness/phase-log
 * Guest-side timings of the steps of one piece of work (the `setup` RPC, the
 * first process), printed as one console line that bench/boot.ts and
 * bench/template-start.ts parse: `aegis-harness: <what> phases: a 12.3, b 4.0, total 16.3 ms`.
 * The guest's monotonic clock stands still while a VM is paused or saved, so
 * only differences within one line mean anything.
 */

/** Records named steps as they finish; each value is ms since the previous mark. */
export class PhaseLog {
  private readonly t0 = performance.now();
  private last = this.t0;
  private readonly parts: [string, number][] = [];

  /** Record that step `name` just ended. */
  mark(name: string): void {
    const now = performance.now();
    this.parts.push([name, now - this.last]);
    this.last = now;
  }

  /** Milliseconds since this log was created. */
  elapsed(): number {
    return performance.now() - this.t0;
  }

  /** The console line for `what`. */
  line(what: string): string {
    return `${what} phases: ${[...this.parts, ["total", this.elapsed()] as [string, number]].map(([k, v]) => `${k} ${v.toFixed(1)}`).join(", ")} ms`;
  }
}

/** Parse the phases of `what` from a console text (the last such line), or undefined. */
export function parsePhaseLine(text: string, what: string): Record<string, number> | undefined {
  const re = new RegExp(`aegis-harness: ${what.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} phases: ([^\\n]*) ms`, "g");
  let last: string | undefined;
  for (const m of text.matchAll(re)) last = m[1];
  if (last === undefined) return undefined;
  const out: Record<string, number> = {};
  for (const part of last.split(", ")) {
    const i = part.lastIndexOf(" ");
    out[part.slice(0, i)] = Number(part.slice(i + 1));
  }
  return out;
}

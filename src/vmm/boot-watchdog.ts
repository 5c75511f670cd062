/**
 * The boot watchdog, measured in the CPU time QEMU got rather than in wall
 * time alone. Its job is to catch a guest that will never get there (the
 * TSC calibration hang, a restore that wedged); a guest that is merely slow
 * because the host is loaded must not be killed and started over, which
 * only adds one more QEMU to the load (three template restores at once on
 * two loaded cores took 30-60 s each, far past a fixed 20 s).
 *
 * So the budget `timeoutMs` is spent only while QEMU runs: it fires once
 * the wall clock passed `timeoutMs` AND QEMU used at least
 * `CPU_SHARE * timeoutMs` of CPU (what it gets on an idle host, so it had
 * its fair chance), or unconditionally at `HARD_FACTOR * timeoutMs` (a
 * guest stuck with its vCPUs halted uses no CPU at all). On an idle host
 * this is the same deadline as before; on a loaded one it stretches with
 * the load, up to the hard cap.
 */
import { readFileSync } from "node:fs";
import { ChannelTimeoutError } from "./control-channel.ts";

/** Share of one core a booting TCG guest gets on an idle host, counted as a fair chance. */
export const CPU_SHARE = 0.5;
/** Wall-clock cap, in multiples of the budget, whatever the CPU time. */
export const HARD_FACTOR = 6;

/** CPU time (user + system, ms) the process `pid` used so far, or undefined when it is gone. */
export function processCpuMs(pid: number): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // Fields after the command name, which may itself hold spaces and parentheses.
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(f[11]) + Number(f[12]); // utime, stime (fields 14 and 15)
  return Number.isFinite(ticks) ? ticks * 10 : undefined; // USER_HZ is 100 on Linux
}

/** Decides, from elapsed wall time and CPU time used, whether a boot ran out of its budget (pure). */
export function budgetSpent(wallMs: number, cpuMs: number, timeoutMs: number): boolean {
  if (wallMs >= HARD_FACTOR * timeoutMs) return true;
  return wallMs >= timeoutMs && cpuMs >= CPU_SHARE * timeoutMs;
}

/** One boot's watchdog: started at spawn, for the QEMU process `pid`. */
export class BootWatchdog {
  private readonly t0 = Date.now();
  private readonly cpu0: number;

  constructor(
    private readonly pid: number,
    readonly timeoutMs: number,
  ) {
    this.cpu0 = processCpuMs(pid) ?? 0;
  }

  /** Wall ms since the spawn. */
  elapsedMs(): number {
    return Date.now() - this.t0;
  }

  /** True once the budget is spent (see the module doc). */
  expired(): boolean {
    const cpu = (processCpuMs(this.pid) ?? this.cpu0) - this.cpu0;
    return budgetSpent(this.elapsedMs(), cpu, this.timeoutMs);
  }

  /** The longest any single wait of this boot may take (the hard cap). */
  get capMs(): number {
    return HARD_FACTOR * this.timeoutMs;
  }

  /**
   * `work`, or a ChannelTimeoutError naming `what` once the budget is spent.
   * `work` itself should time out no sooner than {@link capMs}.
   */
  async guard<T>(work: Promise<T>, what: string): Promise<T> {
    let timer: ReturnType<typeof setInterval> | undefined;
    const fired = new Promise<never>((_, reject) => {
      timer = setInterval(() => {
        if (this.expired()) reject(new ChannelTimeoutError(`${what} not done after ${this.elapsedMs()} ms (budget ${this.timeoutMs} ms of QEMU run time)`));
      }, 250);
    });
    try {
      return await Promise.race([work, fired]);
    } finally {
      clearInterval(timer);
    }
  }
}

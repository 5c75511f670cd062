/**
 * @module bench/_phases
 * Per-phase breakdown of one cold boot, from the guest's own clock (the
 * uptimes /init and the harness print on the console, see
 * src/vmm/assets/init-script.ts and guest/harness/main.ts) and the host's
 * spawn -> `ready` time. Guest uptime starts when the kernel's clock does,
 * so "QEMU start + firmware + kernel decompression" is the host time minus
 * the guest uptime at `ready` (the channel adds well under 1 ms).
 */

/** Milliseconds spent in each phase of one cold boot, in boot order. */
export interface BootPhases {
  /** spawn -> guest clock starts: QEMU start, firmware, kernel decompression. */
  qemuAndDecompress: number;
  /** Kernel boot until /init has mounted proc/sys/dev. */
  kernelToInit: number;
  /** /init insmods the virtio/overlay/ext4/net modules. */
  moduleLoading: number;
  /** /init finds the tools disk by serial and mounts it. */
  toolsMount: number;
  /** exec -> harness main(): ELF load and page-in of the binary, Bun runtime start, JS module imports. */
  harnessLoad: number;
  /** The harness's config read and setup: tmpfs, rootfs overlay, network. */
  harnessSetup: number;
  /** Open the control port and send `ready`. */
  portAndReady: number;
  /** `ready` -> the request handlers are installed (serve.ts loads after `ready`); absent for an older harness. */
  handlersLoad?: number;
}

/** Parse the console log of a harness boot; undefined when a line is missing (e.g. rotated away). */
export function parseBootPhases(consoleText: string, spawnToReadyMs: number): BootPhases | undefined {
  const init = consoleText.match(/aegis-init: \/init at ([\d.]+) s, modules loaded at ([\d.]+) s, exec harness at ([\d.]+) s/);
  const ready = consoleText.match(/aegis-harness: ready: guest uptime at harness main (\d+) ms, setup (\d+)-(\d+) ms, ready (\d+) ms/);
  if (!init || !ready) return undefined;
  const serving = consoleText.match(/aegis-harness: serving: handlers installed at guest uptime (\d+) ms/);
  const [t0, tm, t1] = [init[1], init[2], init[3]].map((v) => Number(v) * 1000) as [number, number, number];
  const [main, setupEnd, readyAt] = [ready[1], ready[3], ready[4]].map(Number) as [number, number, number];
  return {
    qemuAndDecompress: spawnToReadyMs - readyAt,
    kernelToInit: t0,
    moduleLoading: tm - t0,
    toolsMount: t1 - tm,
    harnessLoad: main - t1,
    harnessSetup: setupEnd - main,
    portAndReady: readyAt - setupEnd,
    ...(serving ? { handlersLoad: Number(serving[1]) - readyAt } : {}),
  };
}

/** Guest uptime (ms) printed by the baseline /init right before it powers off. */
export function parseBaselineUptime(consoleText: string): number | undefined {
  const m = consoleText.match(/aegis-baseline: uptime ([\d.]+) s/);
  return m ? Number(m[1]) * 1000 : undefined;
}

/**
 * @module guest/harness/warm
 * Runs, in a template VM before `ready` (so before its snapshot), the
 * harness code every clone's `setup` and first `run` go through, so each
 * clone finds it already loaded in the RAM it restores: the request schemas
 * (zod builds an object schema's parser on its first use), one process
 * started, pumped and reaped through a throwaway ProcessTable (chrooted into
 * the template's assembled root when there is one, so the image's `true`
 * and the chroot path are in the page cache too), and one unix-socket
 * server opened and closed (the MCP bridge's node:net server).
 *
 * Nothing here names an instance or leaves anything behind: the process is
 * `true` (its exit is discarded, never sent to the host), the socket is
 * removed. What stays in the snapshot is code and the page cache of the
 * template's own read-only rootfs, which every clone attaches unchanged.
 *
 * What it cut, measured in the guest (console phase lines, phase-log.ts) on
 * clones of the task template (TCG, 2 cores shared with other VMs, medians
 * of 6, bench/template-start.ts A/B): parsing the `setup` request
 * 160-190 -> 16-20 ms and the first `run` 34-140 -> 6-12 ms (zod's
 * first parse of each schema), the first process's spawn -> exit
 * 300-460 -> 180-270 ms. Warming costs the template build ~0.5 s, once.
 */
import { rmSync } from "node:fs";
import { ControlRequests } from "../../src/api/schema/control.ts";
import { McpRelay } from "./mcp-relay.ts";
import { ProcessTable } from "./processes.ts";

/** Pids Bun owns (the orphan reaper leaves them alone). */
export interface OwnedPids {
  own(pid: number): void;
  disown(pid: number): void;
}

/**
 * Warm the clone paths; `root` is the assembled rootfs when the template has
 * one. Never fails the template: warming only saves time, so a step that
 * fails (an image without `true` on its PATH, say) is logged and the next
 * one still runs; an image without `true` is warmed with the initramfs's.
 */
export async function warmClonePaths(root: string | undefined, pids: OwnedPids, log: (msg: string) => void): Promise<void> {
  const t0 = performance.now();
  const step = async (what: string, fn: () => Promise<void> | void): Promise<boolean> => {
    try {
      await fn();
      return true;
    } catch (err) {
      log(`warm-up of the clone paths: ${what} failed (clones only start slower): ${err instanceof Error ? err.message : String(err)}`);
      return false;
    }
  };
  await step("parsing the request schemas", () => {
    ControlRequests.setup.params.parse({ hostname: "aegis-template", epoch_ms: Date.now(), entropy: Buffer.alloc(64).toString("base64") });
  });
  const chrooted = root !== undefined && (await step(`\`true\` in ${root}`, () => runTrue(root, ["true"], pids)));
  if (!chrooted) await step("`/bin/busybox true`", () => runTrue(undefined, ["/bin/busybox", "true"], pids));
  await step("a unix-socket server", async () => {
    const sock = "/run/aegis-warm-mcp.sock";
    const relay = new McpRelay(async () => {}, log);
    await relay.listen(sock);
    relay.close();
    rmSync(sock, { force: true });
  });
  log(`warmed the clone paths in ${(performance.now() - t0).toFixed(0)} ms`);
}

/** How long the warm-up's `true` may take before it counts as failed (an image whose `true` blocks must not stall the template build). */
const WARM_PROCESS_TIMEOUT_MS = 10_000;

/** Run `argv` (chrooted at `root`) through a throwaway ProcessTable, as a `run` request would; resolves once it exited 0. */
function runTrue(root: string | undefined, argv: string[], pids: OwnedPids): Promise<void> {
  const params = ControlRequests.run.params.parse({ id: "warm", argv, env: {}, primary: true });
  return new Promise<void>((resolve, reject) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const table = new ProcessTable(root, {
      output: async () => {},
      exit: async (_id, code, signal) => {
        clearTimeout(timer); // no timer of the warm-up is left in the template's snapshot
        if (code === 0) resolve();
        else reject(new Error(`${argv.join(" ")} exited with code ${code}${signal ? ` (${signal})` : ""}`));
      },
      primaryExited: () => {},
      own: (pid) => pids.own(pid),
      disown: (pid) => pids.disown(pid),
    });
    timer = setTimeout(() => {
      table.killAll(); // nothing of the warm-up may run on in the template's snapshot
      reject(new Error(`${argv.join(" ")} did not exit within ${WARM_PROCESS_TIMEOUT_MS} ms`));
    }, WARM_PROCESS_TIMEOUT_MS).unref();
    table.run(params); // throws (so rejects) when the program cannot be started
  });
}

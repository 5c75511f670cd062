/**
 * @module guest/harness/main
 * The guest harness: PID 1 inside every Aegis VM (`aegis __harness`, exec'd
 * by the initramfs /init once the tools disk is mounted).
 *
 * Boot path, kept short because every millisecond here is boot time:
 * read the boot config, open the `aegis.control` port and start reading it,
 * run the one setup script (mounts, overlay rootfs, network), send `ready`,
 * and only then import the request handlers (serve.ts). A template VM
 * (`aegis.defer=1`) is the exception: it also does the instance-independent
 * part of setup (setup.ts setupTemplate), loads the handlers and warms the
 * clone paths (warm.ts) before `ready`, because its snapshot follows `ready`
 * and every clone should restore them loaded. The boot path loads
 * no zod and no schema module at all (the wire constants come from
 * api/schema/guest-wire.ts), never the CLI or the daemon, and the FFI bits
 * load lazily on first use.
 *
 * Requests that arrive before the handlers are installed wait in the port:
 * its first read is started before setup (below), and it reads no more
 * until the handlers are there, so nothing is dropped or buffered without
 * bound (the host sends nothing before `ready`).
 *
 * Cold-boot figures (issue 19; TCG on 2 shared cores, JIT off, interleaved
 * A/B pairs of QEMU spawn -> `ready` -> first ping, medians, bench/boot-ab.ts).
 * Earlier: code splitting (build.ts) took exec -> harness main 2210 -> 2050
 * ms; starting the port's first read before setup took the first RPC 230 ->
 * 97 ms. Per-import marks in the guest then showed where exec -> harness
 * main went: ~0.95 s is Bun's own start (a compiled hello-world reaches its
 * first statement ~0.95 s after exec in this guest), ~0.9-1.2 s was
 * evaluating imports, of which zod and the schemas built with it were
 * ~0.7 s, and mcp.ts alone pulled the daemon API's schemas (150-290 ms) for
 * three constants. This split (boot path without zod, handlers after
 * `ready`, log.ts instead of process.stderr), 6 pairs on a quieter host:
 * exec -> harness main 1236 -> 460 ms (harness load phase 1860 -> 1080,
 * per-pair 0.57), setup 590 -> 700 ms (first uses of FFI and of dynamic
 * import that the import phase used to pay), spawn -> `ready` 5098 -> 4342
 * ms (per-pair 0.89). The handlers then take ~390 ms after `ready` (zod,
 * the request schemas, the process table), so the first ping is answered
 * 141 -> 406 ms after `ready`; exec -> first answer 2651 -> 2186 ms.
 * What is left: Bun's own start (of the 1080 ms, ~620 ms pass before Bun's
 * clock starts: ELF load and page-in from the tools disk, runtime init; the
 * boot-path modules have all run ~440 ms after that, most of it JSC's own start),
 * zod's evaluation and schema construction (~0.3-0.4 s, now after `ready`),
 * and setup's many small first-time costs (~0.2 s from main to setup, then
 * ~0.5 s of setup: FFI, mounts, network ioctls, injection).
 */
import { readFileSync } from "node:fs";
import { notification } from "../../src/api/jsonrpc.ts";
import { VERSION } from "../../src/api/version.ts";
import { readGuestConfig } from "./config.ts";
import { ControlPort, findControlPort } from "./port.ts";
import { type EarlySetup, parseMounts, ROOT, setupBase, setupGuest, setupTemplate } from "./setup.ts";
import { log } from "./log.ts";
import { uptimeMs } from "./uptime.ts";

/** Milliseconds since exec when this module finished loading its imports (boot diagnostics). */
const moduleLoadedAt = performance.now();

/** Harness entry point. */
export async function main(_argv: string[]): Promise<void> {
  // The harness is the guest's init. /usr/bin/aegis-harness is injected into every rootfs
  // (spec), so refuse to run anywhere else: its setup would remount a live guest.
  if (process.pid !== 1 && process.env.AEGIS_HARNESS_INIT !== "1") {
    log("this is the guest's init (PID 1) and is started by the VM itself; it cannot be run as a command");
    process.exit(2);
  }
  const startedMs = uptimeMs();
  const mainAt = performance.now();
  const owned = new Set<number>();
  const cfg = await readGuestConfig();
  // The control port is opened and read before setup, not after it: the first read of the
  // port is what starts the runtime's I/O thread pool, and under TCG that first read took
  // 0.2-0.4 s when it was started after `ready`, so it sat between `ready` and the host's
  // first request (first RPC in the boot breakdown: ~1.1 s -> ~0.2 s on a loaded host).
  // The host sends nothing before `ready`; whatever the first read returns waits in `early`,
  // and the port reads no more until the handlers are installed (`served`).
  const port = new ControlPort(findControlPort(), { log });
  let dispatch: ((line: string) => void) | undefined;
  const early: string[] = [];
  let handlersInstalled!: () => void;
  const served = new Promise<void>((resolve) => (handlersInstalled = resolve));
  port.startReading(
    (line) => {
      if (dispatch) dispatch(line);
      else early.push(line);
    },
    (err) => log(`control port read error: ${err.message}`),
    { holdAfterFirstRead: served },
  );
  const setupStartMs = uptimeMs();
  const mounted = parseMounts(readFileSync("/proc/mounts", "utf8"));
  // Deferred (template) VMs do only what names no instance before `ready` (setupTemplate); the rest on the `setup` RPC, after a restore.
  await (cfg.defer ? setupBase(cfg, mounted) : setupGuest(cfg, mounted));
  const template: EarlySetup | undefined = cfg.defer ? await setupTemplate(cfg) : undefined;
  const setupDoneMs = uptimeMs();
  if (!cfg.rootDisk) log("no rootfs disk (serial aegis-root): processes run in the initramfs");

  // zod compiles a fast parser per object schema with `new Function` on its first parse, which
  // under TCG with the JIT off costs more than it ever saves in the few requests a guest gets:
  // jitless is set before the schemas (serve.ts's imports) are built, as zod reads it then.
  const loadServe = async () => {
    (await import("zod")).z.config({ jitless: true });
    return (await import("./serve.ts")).serve;
  };
  // A template loads the handlers and runs every clone's setup and first-process paths once before
  // `ready` (so before its snapshot: warm.ts); a cold boot answers `ready` first and loads them after.
  const templateServe = template ? await loadServe() : undefined;
  if (template) await (await import("./warm.ts")).warmClonePaths(template.rootPrepared ? ROOT : undefined, { own: (pid) => owned.add(pid), disown: (pid) => owned.delete(pid) }, log);

  const portAt = performance.now();
  const readyUptime = uptimeMs();
  port.sendSync(notification("ready", { version: VERSION, uptime_ms: readyUptime }));
  const readyAt = performance.now();
  // The boot benchmark (bench/_phases.ts) reads this line: keep its shape.
  log(`ready: guest uptime at harness main ${startedMs} ms, setup ${setupStartMs}-${setupDoneMs} ms, ready ${readyUptime} ms`);

  const serve = templateServe ?? (await loadServe());
  dispatch = serve({ cfg, port, owned, setUp: !cfg.defer, log, template, readyAt });
  for (const line of early.splice(0)) dispatch(line);
  handlersInstalled();
  const servingAt = performance.now();
  log(`since exec: imports ${moduleLoadedAt.toFixed(0)} ms, main ${mainAt.toFixed(0)} ms, port ${portAt.toFixed(0)} ms, ready ${readyAt.toFixed(0)} ms, serving ${servingAt.toFixed(0)} ms`);
  log(`serving: handlers installed at guest uptime ${uptimeMs()} ms`);
  // PID 1 must never exit (the kernel panics): never resolve, so no caller can mistake boot for completion.
  await new Promise<never>(() => {});
}

/**
 * @module guest/harness/main
 * The guest harness: PID 1 inside every Aegis VM (`aegis __harness`, exec'd
 * by the initramfs /init once the tools disk is mounted).
 *
 * Boot path, kept short because every millisecond here is boot time:
 * read the boot config, open the `aegis.control` port and start reading it,
 * run the one setup script (mounts, overlay rootfs, network), send `ready`. Only the modules
 * the harness needs are imported (never the CLI or the daemon), and the FFI
 * bits load lazily on first use.
 *
 * Cold-boot figures (issue 19; TCG on 2 shared cores, 5 interleaved A/B
 * pairs of QEMU spawn -> `ready` -> first ping against the previous harness,
 * medians, per-pair ratio medians): exec -> harness main 2210 -> 2050 ms
 * (0.80, code splitting, see build.ts), setup 370 -> 510 ms (1.50: the port's
 * first read moved into it, below), first RPC 230 -> 97 ms (0.40); exec ->
 * first answer 2880 -> 2709 ms (0.85), spawn -> first answer 0.91x. What is
 * left is mostly the Bun runtime itself: a compiled hello-world Bun binary
 * takes 1.0-1.9 s to run in this guest with a warm page cache.
 *
 * After `ready` it serves JSON-RPC requests (see api/schema/control.ts),
 * serves the MCP bridge socket (/run/aegis/mcp.sock in the user rootfs,
 * relayed to the host as guest -> host `mcp.*` requests, see mcp-relay.ts),
 * reaps orphaned zombies once a second, and powers the VM off on `shutdown`
 * or when a `primary` process exits (QEMU runs with -no-reboot, so the
 * guest's `reboot -f` ends the QEMU process).
 */
import { readFileSync } from "node:fs";
import { MCP_BRIDGE_DEFAULT_PATH } from "../../src/api/schema/mcp.ts";
import { AckParams, ControlRequests, MAX_TRACKED_PROCESSES, OutputAckParams, ResumeParams, RpcErrorCode, TetherFrameParams, type ControlRequestMethod } from "../../src/api/schema/control.ts";
import { errorResponse, isParseFailure, notification, parseMessage, response, RpcError } from "../../src/api/jsonrpc.ts";
import { VERSION } from "../../src/api/version.ts";
import { readGuestConfig } from "./config.ts";
import { GuestFiles } from "./files.ts";
import { GuestWatches } from "./watch.ts";
import { ControlPort, findControlPort } from "./port.ts";
import { ProcessTable } from "./processes.ts";
import { ReplayRing } from "./replay.ts";
import { reapOrphans } from "./reaper.ts";
import { McpRelay } from "./mcp-relay.ts";
import { TetherRelay } from "./tether-relay.ts";
import { PhaseLog } from "./phase-log.ts";
import { type EarlySetup, parseMounts, powerOffDirect, ROOT, setupBase, setupGuest, setupInstance, setupTemplate, shutdownScript } from "./setup.ts";

/** Milliseconds since exec when this module finished loading its imports (boot diagnostics). */
const moduleLoadedAt = performance.now();

/** Lines from the host kept while the harness is still setting up (the host sends none before `ready`). */
const EARLY_LINES_MAX = 64;

function uptimeMs(): number {
  return Math.round(Number(readFileSync("/proc/uptime", "utf8").split(" ")[0]) * 1000);
}

function log(msg: string): void {
  process.stderr.write(`aegis-harness: ${msg}\n`);
}

/** Run a busybox shell script (used for the shutdown sequence); throws with its stderr when it fails. */
async function sh(script: string, owned: Set<number>): Promise<void> {
  const proc = Bun.spawn(["/bin/busybox", "sh", "-c", script], {
    stdin: "ignore",
    stdout: "inherit",
    stderr: "pipe",
    env: { PATH: "/bin:/sbin" },
  });
  owned.add(proc.pid);
  const [err, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
  owned.delete(proc.pid);
  if (code !== 0) throw new Error(`guest shell script failed (exit ${code}): ${err.trim()}`);
}

/** Harness entry point. */
export async function main(_argv: string[]): Promise<void> {
  // The harness is the guest's init. /usr/bin/aegis-harness is injected into every rootfs
  // (spec), so refuse to run anywhere else: its setup would remount a live guest.
  if (process.pid !== 1 && process.env.AEGIS_HARNESS_INIT !== "1") {
    process.stderr.write("aegis-harness: this is the guest's init (PID 1) and is started by the VM itself; it cannot be run as a command\n");
    process.exit(2);
  }
  const startedMs = uptimeMs();
  const mainAt = performance.now();
  const owned = new Set<number>();
  const cfg = readGuestConfig();
  // The control port is opened and read before setup, not after it: the first read of the
  // port is what starts the runtime's I/O thread pool, and under TCG that first read took
  // 0.2-0.4 s when it was started after `ready`, so it sat between `ready` and the host's
  // first request (first RPC in the boot breakdown: ~1.1 s -> ~0.2 s on a loaded host).
  // The host sends nothing before `ready`; anything that comes early anyway waits
  // (bounded) until the handlers exist.
  const port = new ControlPort(findControlPort(), { log });
  let dispatch: ((line: string) => void) | undefined;
  const early: string[] = [];
  port.startReading(
    (line) => {
      if (dispatch) dispatch(line);
      else if (early.length < EARLY_LINES_MAX) early.push(line);
      else log(`control: dropped a request that came before the harness was ready (over ${EARLY_LINES_MAX} waiting)`);
    },
    (err) => log(`control port read error: ${err.message}`),
  );
  const setupStartMs = uptimeMs();
  const mounted = parseMounts(readFileSync("/proc/mounts", "utf8"));
  // Deferred (template) VMs do only what names no instance before `ready` (setupTemplate); the rest on the `setup` RPC, after a restore.
  await (cfg.defer ? setupBase(cfg, mounted) : setupGuest(cfg, mounted));
  const template: EarlySetup | undefined = cfg.defer ? await setupTemplate(cfg) : undefined;
  const setupDoneMs = uptimeMs();
  let setUp = !cfg.defer;
  let root = cfg.rootDisk && setUp ? ROOT : undefined;
  if (!cfg.rootDisk) log("no rootfs disk (serial aegis-root): processes run in the initramfs");

  const portAt = performance.now();
  let shuttingDown = false;
  const send = (line: string): Promise<void> => port.send(line);
  // output, exit and tether frames are kept until the host acknowledges them (live restore, replay.ts).
  const ring = new ReplayRing(send);

  const powerOff = async (): Promise<void> => {
    if (shuttingDown) return;
    shuttingDown = true;
    procs.killAll();
    const { syncAll } = await import("./libc.ts");
    syncAll();
    try {
      await powerOffDirect(root !== undefined, log);
    } catch (err) {
      log(`power off through syscalls failed (${String(err)}); running the shutdown script`);
    }
    await sh(shutdownScript(root !== undefined), owned);
  };

  const procs = new ProcessTable(root, {
    output: (id, stream, data) => ring.send("output", { id, stream, data }),
    exit: (id, code, signal) => ring.send("exit", signal ? { id, code, signal } : { id, code }),
    primaryExited: () => {
      powerOff().catch((err: unknown) => log(`power off failed: ${String(err)}`));
    },
    own: (pid) => owned.add(pid),
    disown: (pid) => owned.delete(pid),
  });

  let tether: TetherRelay | undefined;
  const relay = (): TetherRelay =>
    (tether ??= new TetherRelay((frame) => {
      ring.send("tether.frame", { frame }).catch((err: unknown) => log(`tether: could not send a frame to the host: ${String(err)}`));
    }, log));

  const mcp = new McpRelay(send, log);
  let mcpServed = false;
  // Where the user's processes see /run/aegis/mcp.sock: inside the rootfs, or the initramfs itself without one.
  const serveMcp = (at: string | undefined): void => {
    mcpServed = true;
    mcp.listen(`${at ?? ""}${MCP_BRIDGE_DEFAULT_PATH}`).catch((err: unknown) => log(`mcp bridge: cannot listen: ${String(err)}`));
  };

  const files = new GuestFiles(() => {
    if (!setUp) throw new RpcError(RpcErrorCode.notSetUp, "this VM waits for its setup request (deferred setup) before its files can be reached");
    return root;
  });
  const watches = new GuestWatches(
    () => {
      if (!setUp) throw new RpcError(RpcErrorCode.notSetUp, "this VM waits for its setup request (deferred setup) before its files can be reached");
      return root;
    },
    (event) => {
      send(notification("fs.event", event)).catch((err: unknown) => log(`fs.watch: could not send an event to the host: ${String(err)}`));
    },
  );
  const handlers: { [M in ControlRequestMethod]: (params: any) => unknown | Promise<unknown> } = {
    run: (p) => {
      if (!setUp) throw new RpcError(RpcErrorCode.notSetUp, "this VM waits for its setup request (deferred setup) before it can run processes");
      return procs.run(p);
    },
    setup: async (p) => {
      if (setUp) throw new RpcError(RpcErrorCode.invalidRequest, "setup was already done in this VM");
      const phases = new PhaseLog();
      // Guest time from the template's `ready` (its snapshot follows at once; the clock stood still in the
      // file) to this handler: what the clone ran between its resume and its first request, plus the parse.
      log(`setup: handled ${(performance.now() - readyAt).toFixed(0)} ms (guest clock) after the template's ready`);
      const libc = await import("./libc.ts");
      phases.mark("libc");
      libc.setWallClock(p.epoch_ms);
      libc.reseedRandom(Buffer.from(p.entropy, "base64"));
      phases.mark("clock + entropy");
      // The template probed its own overlay disk at the same device: its cached blocks must go. The rootfs
      // is the template's own file (the template key), so a lower layer mounted before the snapshot stays.
      for (const dev of [template?.mounts ? undefined : cfg.rootDisk, cfg.overlayDisk]) if (dev) libc.flushBlockDevice(dev);
      phases.mark("flush disks");
      await setupInstance({ ...cfg, hostname: p.hostname }, phases, template);
      root = cfg.rootDisk ? ROOT : undefined;
      procs.setRoot(root);
      setUp = true;
      if (!mcpServed) serveMcp(root);
      phases.mark("mcp");
      log(phases.line("setup"));
      return { ok: true };
    },
    signal: (p) => {
      procs.signal(p.id, p.signal);
      return { ok: true };
    },
    "stdin.write": async (p) => {
      await procs.writeStdin(p.id, Buffer.from(p.data, "base64"));
      return { ok: true };
    },
    "stdin.close": async (p) => {
      await procs.closeStdin(p.id);
      return { ok: true };
    },
    "tty.resize": (p) => {
      procs.resize(p.id, p.cols, p.rows);
      return { ok: true };
    },
    "clock.set": async (p) => {
      const { setWallClock } = await import("./libc.ts");
      setWallClock(p.epoch_ms);
      return { ok: true };
    },
    ping: () => ({ uptime_ms: uptimeMs() }),
    stats: async () => (await import("./stats.ts")).guestStats(uptimeMs()),
    "port.wait": async (p) => {
      const { waitForListen } = await import("./net-ports.ts");
      return await waitForListen(p.port, p.timeout_ms);
    },
    shutdown: () => ({ ok: true }),
    // A re-adopting daemon ends the execs whose clients went with the old one (never the primary).
    "processes.end_untracked": (p) => {
      const ended = procs.endUntracked(new Set(p.keep), p.grace_ms);
      if (ended.length > 0) log(`ended ${ended.length} untracked process(es) after the host came back: ${ended.slice(0, 16).join(", ")}`);
      return { ended: ended.slice(0, MAX_TRACKED_PROCESSES) };
    },
    resume: (p) => ring.after(p.after_seq), // answered synchronously in onLine; here for the table's completeness
    "fs.stat": (p) => files.stat(p),
    "fs.list": (p) => files.list(p),
    "fs.read": (p) => files.read(p),
    "fs.write": (p) => files.write(p),
    "fs.mkdir": (p) => files.mkdir(p),
    "fs.remove": (p) => files.remove(p),
    "fs.rename": (p) => files.rename(p),
    "fs.symlink": (p) => files.symlink(p),
    "fs.setattr": (p) => files.setattr(p),
    "fs.readonly": (p) => files.readonly(p),
    "fs.watch": (p) => watches.watch(p),
    "fs.unwatch": (p) => watches.unwatch(p),
  };

  // The first `run` and the `setup` of a VM are timed in the guest (console line; bench/template-start.ts).
  let runTimed = false;
  const onLine = async (line: string): Promise<void> => {
    const rpc = new PhaseLog();
    const msg = parseMessage(line);
    if (isParseFailure(msg)) {
      await send(errorResponse(null, msg));
      return;
    }
    if (msg.method === undefined) {
      // A response: the host's answer to a relayed MCP bridge request.
      if (!mcp.deliver(msg.id, msg.error ? { error: msg.error } : { result: msg.result })) log(`control: an answer to no request (id ${String(msg.id)})`);
      return;
    }
    const isRequest = msg.id !== undefined && msg.id !== null;
    if (msg.method === "tether.frame" && !isRequest) {
      const parsed = TetherFrameParams.safeParse(msg.params);
      if (parsed.success) relay().deliver(parsed.data.frame);
      else log(`tether: invalid frame notification: ${parsed.error.message}`);
      return;
    }
    if (msg.method === "ack" && !isRequest) {
      const parsed = AckParams.safeParse(msg.params);
      if (parsed.success) ring.ack(parsed.data.seq);
      else log(`control: invalid ack: ${parsed.error.message}`);
      return;
    }
    if (msg.method === "resume" && isRequest) {
      // Answered in this synchronous step: every seq'd line queued before the answer is in it.
      const parsed = ResumeParams.safeParse(msg.params);
      const answer = parsed.success ? response(msg.id!, ring.after(parsed.data.after_seq)) : errorResponse(msg.id!, { code: RpcErrorCode.invalidParams, message: parsed.error.message });
      await send(answer);
      return;
    }
    if (msg.method === "output.ack" && !isRequest) {
      const parsed = OutputAckParams.safeParse(msg.params);
      if (parsed.success) procs.ack(parsed.data.id, parsed.data.bytes);
      else log(`control: invalid output.ack: ${parsed.error.message}`);
      return;
    }
    const spec = (ControlRequests as Record<string, (typeof ControlRequests)[ControlRequestMethod]>)[msg.method];
    if (!spec) {
      if (isRequest) await send(errorResponse(msg.id!, { code: RpcErrorCode.methodNotFound, message: `unknown method ${msg.method}` }));
      return;
    }
    const parsed = spec.params.safeParse(msg.params);
    if (!parsed.success) {
      if (isRequest) await send(errorResponse(msg.id!, { code: RpcErrorCode.invalidParams, message: parsed.error.message }));
      return;
    }
    const timed = msg.method === "setup" || (msg.method === "run" && !runTimed);
    if (msg.method === "run") runTimed = true;
    try {
      rpc.mark("parse");
      const result = await handlers[msg.method as ControlRequestMethod](parsed.data);
      rpc.mark("handler");
      if (isRequest) await send(response(msg.id!, result));
      rpc.mark("send");
      if (timed) log(rpc.line(`rpc ${msg.method}`));
    } catch (err) {
      const e = err instanceof RpcError ? err : new RpcError(RpcErrorCode.internal, err instanceof Error ? err.message : String(err));
      if (isRequest) await send(errorResponse(msg.id!, { code: e.code, message: e.message, ...(e.data !== undefined ? { data: e.data } : {}) }));
    }
    if (msg.method === "shutdown") await powerOff();
  };

  if (cfg.defer) {
    // A template: its assembled root (no overlay disk) already gets the bridge socket, and the code paths
    // of every clone's setup and first process run once here, before the snapshot (warm.ts).
    if (template?.rootPrepared) serveMcp(ROOT);
    await (await import("./warm.ts")).warmClonePaths(template?.rootPrepared ? ROOT : undefined, { own: (pid) => owned.add(pid), disown: (pid) => owned.delete(pid) }, log);
  }
  port.sendSync(notification("ready", { version: VERSION, uptime_ms: uptimeMs() }));
  const readyAt = performance.now();
  if (setUp) serveMcp(root);
  dispatch = (line) => {
    onLine(line).catch((err: unknown) => log(`request failed: ${String(err)}`));
  };
  for (const line of early.splice(0)) dispatch(line);

  setInterval(() => {
    import("./libc.ts")
      // The /proc scan only when some child waits to be reaped: scanning every second took 40-280 ms a
      // tick under TCG on a loaded host (reaper.ts), in every VM, idle or not, and in a clone's start.
      .then(({ hasExitedChild, reapPid }) => (hasExitedChild() ? reapOrphans(owned, reapPid) : 0))
      .catch((err: unknown) => log(`reaper: ${String(err)}`));
  }, 1000);

  log(`since exec: imports ${moduleLoadedAt.toFixed(0)} ms, main ${mainAt.toFixed(0)} ms, port ${portAt.toFixed(0)} ms, ready ${readyAt.toFixed(0)} ms`);
  log(`ready: guest uptime at harness main ${startedMs} ms, setup ${setupStartMs}-${setupDoneMs} ms, ready ${uptimeMs()} ms`);
  // PID 1 must never exit (the kernel panics): never resolve, so no caller can mistake boot for completion.
  await new Promise<never>(() => {});
}

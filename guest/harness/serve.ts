/**
 * @module guest/harness/serve
 * What the harness does once it has sent `ready`: serve the host's JSON-RPC
 * requests (see api/schema/control.ts), relay the MCP bridge socket
 * (/run/aegis/mcp.sock in the user rootfs, as guest -> host `mcp.*`
 * requests, see mcp-relay.ts) and tether frames, reap orphaned zombies once
 * a second, and power the VM off on `shutdown` or when a `primary` process
 * exits (QEMU runs with -no-reboot, so the guest's `reboot -f` ends the
 * QEMU process).
 *
 * main.ts imports this module only after `ready` is on the wire (a template
 * VM before it, so its snapshot holds it loaded: main.ts): it holds
 * everything that needs zod (the request schemas) and the process table, so
 * their load overlaps with the host's own work after `ready` instead of
 * delaying it. Requests that come meanwhile wait in the port (main.ts).
 * The MCP relay (node:net, which is slow to load under TCG) is imported
 * after the handlers are installed, so a first `run` does not wait for it;
 * the host's answers to relayed requests can only come after it exists.
 */
import { AckParams, ControlRequests, MAX_TRACKED_PROCESSES, OutputAckParams, ResumeParams, RpcErrorCode, TetherFrameParams, type ControlRequestMethod } from "../../src/api/schema/control.ts";
import { MCP_BRIDGE_DEFAULT_PATH } from "../../src/api/schema/guest-wire.ts";
import { errorResponse, isParseFailure, notification, parseMessage, response, RpcError } from "../../src/api/jsonrpc.ts";
import type { GuestConfig } from "./config.ts";
import { GuestFiles } from "./files.ts";
import { GuestWatches } from "./watch.ts";
import type { ControlPort } from "./port.ts";
import { ProcessTable } from "./processes.ts";
import { ReplayRing } from "./replay.ts";
import { reapOrphans } from "./reaper.ts";
import type { McpRelay } from "./mcp-relay.ts";
import { TetherRelay } from "./tether-relay.ts";
import { type EarlySetup, powerOffDirect, ROOT, setupInstance, shutdownScript } from "./setup.ts";
import { PhaseLog } from "./phase-log.ts";
import { uptimeMs } from "./uptime.ts";

/** What main.ts hands over once `ready` is sent. */
export interface ServeContext {
  cfg: GuestConfig;
  port: ControlPort;
  /** Pids the harness spawned itself (never reaped as orphans). */
  owned: Set<number>;
  /** Whether the rootfs is set up (false in a deferred, template VM until its `setup` request). */
  setUp: boolean;
  log: (msg: string) => void;
  /** What a template VM did before `ready` (setupTemplate); undefined in a cold-booted VM. */
  template?: EarlySetup;
  /** performance.now() when `ready` was sent (a clone's setup logs the guest time since). */
  readyAt: number;
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

/** Install the request handlers; returns the function each control line goes to. */
export function serve(ctx: ServeContext): (line: string) => void {
  const { cfg, port, owned, log, template, readyAt } = ctx;
  let setUp = ctx.setUp;
  let root = cfg.rootDisk && setUp ? ROOT : undefined;
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

  let mcp: McpRelay | undefined;
  const mcpLoaded = import("./mcp-relay.ts").then(({ McpRelay }) => (mcp = new McpRelay(send, log)));
  let mcpServed = false;
  // Where the user's processes see /run/aegis/mcp.sock: inside the rootfs (`at`), or the initramfs itself without one.
  const serveMcp = (at: string | undefined): void => {
    mcpServed = true;
    mcpLoaded
      .then((relay) => relay.listen(`${at ?? ""}${MCP_BRIDGE_DEFAULT_PATH}`))
      .catch((err: unknown) => log(`mcp bridge: cannot listen: ${String(err)}`));
  };

  const notSetUp = (what: string) => new RpcError(RpcErrorCode.notSetUp, `this VM waits for its setup request (deferred setup) before ${what}`);
  const files = new GuestFiles(() => {
    if (!setUp) throw notSetUp("its files can be reached");
    return root;
  });
  const watches = new GuestWatches(
    () => {
      if (!setUp) throw notSetUp("its files can be reached");
      return root;
    },
    (event) => {
      send(notification("fs.event", event)).catch((err: unknown) => log(`fs.watch: could not send an event to the host: ${String(err)}`));
    },
  );
  const handlers: { [M in ControlRequestMethod]: (params: any) => unknown | Promise<unknown> } = {
    run: (p) => {
      if (!setUp) throw notSetUp("it can run processes");
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
      // A response: the host's answer to a relayed MCP bridge request (so the relay exists).
      if (!mcp?.deliver(msg.id, msg.error ? { error: msg.error } : { result: msg.result })) log(`control: an answer to no request (id ${String(msg.id)})`);
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

  // A template's assembled root (no overlay disk) gets the bridge socket before its snapshot.
  if (setUp) serveMcp(root);
  else if (template?.rootPrepared) serveMcp(ROOT);
  setInterval(() => {
    import("./libc.ts")
      // The /proc scan only when some child waits to be reaped: scanning every second took 40-280 ms a
      // tick under TCG on a loaded host (reaper.ts), in every VM, idle or not, and in a clone's start.
      .then(({ hasExitedChild, reapPid }) => (hasExitedChild() ? reapOrphans(owned, reapPid) : 0))
      .catch((err: unknown) => log(`reaper: ${String(err)}`));
  }, 1000);

  return (line) => {
    onLine(line).catch((err: unknown) => log(`request failed: ${String(err)}`));
  };
}

/**
 * @module api/schema/control
 * The guest control protocol: JSON-RPC 2.0, one JSON object per line, spoken
 * between the host (the VMM backend) and the guest harness over the
 * virtio-serial port `aegis.control` (QEMU) or a vsock port (libkrun).
 * Host and guest both validate with these schemas, so the wire format is
 * defined exactly once.
 *
 * Direction and shape of every method:
 * - `ready` (notification, guest -> host): the harness is up and the rootfs is mounted.
 * - `run` (request, host -> guest): start a process; result `{pid}`. Its output then
 *   arrives as `output` notifications and its end as one `exit` notification, sent
 *   only after every byte of its stdout and stderr has been sent.
 *   With `window` set, output is credit-based: the harness stops reading the
 *   process's pipes once `window` raw bytes are unacknowledged (the process
 *   then blocks on write, as under a stopped terminal), and resumes as the
 *   host acknowledges them with `output.ack` (notification, host -> guest).
 * - `signal` (request): deliver a signal to a running process's process group.
 * - `clock.set` (request): set the guest wall clock (after resume or restore).
 * - `ping` (request): liveness and latency probe.
 * - `port.wait` (request): resolve once something LISTENs on a guest TCP port
 *   (any address, IPv4 or IPv6); error `timeout` after `timeout_ms`. The
 *   host's call timeout must exceed `timeout_ms`.
 * - `shutdown` (request): sync, unmount and power the VM off; the reply comes first.
 * - `setup` (request): only in a VM booted with deferred setup (`aegis.defer=1`,
 *   template VMs and their clones): set the clock, reseed the kernel RNG with
 *   host entropy, mount the rootfs overlay, set the hostname. Before it, `run`
 *   fails with `notSetUp`; a second `setup` fails with `invalidRequest`.
 * - `fs.watch` / `fs.unwatch` (requests): watch a directory of the rootfs (inotify
 *   through Bun's fs.watch); its changes arrive as `fs.event` notifications
 *   (guest -> host), rate-limited per watch, until `fs.unwatch` or the path goes.
 * - `mcp.*` (requests, guest -> host): the guest's MCP server asks aegisd to
 *   spawn, list or stop child instances, expose ports, hold a keepalive
 *   (`GuestRequests`, schemas in mcp.ts). The harness relays them from
 *   its bridge socket with ids of its own; the host answers with a result or
 *   a JSON-RPC error and identifies the caller by the channel, never by
 *   anything in the request.
 *
 * Live restore (the host may go away and come back while the VM runs on):
 * - every `output`, `exit` and guest -> host `tether.frame` notification
 *   carries `seq`, one counter per harness that only goes up. The harness
 *   keeps each one in a bounded replay ring (guest/harness/replay.ts) until
 *   the host acknowledges it with `ack` (notification, host -> guest,
 *   cumulative: everything up to `seq`); while the ring is full the harness
 *   waits (its producers, process output pumps, stall as on a slow host),
 *   so nothing is ever dropped and guest memory stays bounded.
 * - `resume` (request, host -> guest): a host that (re)connected to a running
 *   VM asks for everything the harness still holds after `after_seq` (the
 *   last seq it handled durably); the answer carries those notifications in
 *   order. Until the answer arrives the host ignores seq'd notifications
 *   (a write that was blocked while it was away shows up first; it is in the
 *   answer too), and it drops any seq it has already handled.
 * - `processes.end_untracked` (request, host -> guest): a daemon that re-adopted
 *   a running VM names the `ends_with_client` processes it still follows; the
 *   harness ends the others (execs whose client went with the old daemon:
 *   nobody can read their output or stdin again). Primary processes and those
 *   started without `ends_with_client` are never touched.
 *   A harness older than this method answers `methodNotFound`.
 */
import { z } from "zod";
import { FileStat, FsEventParams, FsListParams, FsUnwatchParams, FsWatchParams, FsListResult, FsMkdirParams, FsReadParams, FsReadResult, FsReadonlyParams, FsRemoveParams, FsRenameParams, FsSetattrParams, FsStatParams, FsSymlinkParams, FsWriteParams, FsWriteResult } from "./files.ts";
import { GuestStats } from "./stats.ts";

import { MAX_OUTPUT_WINDOW, MAX_TRACKED_PROCESSES, OUTPUT_CHUNK_BYTES } from "./guest-wire.ts";

// The zod-free constants of the wire live in guest-wire.ts (the harness's boot path imports them from there).
export { CONTROL_PORT_NAME, CONTROL_VSOCK_PORT, MAX_OUTPUT_WINDOW, MAX_TRACKED_PROCESSES, OUTPUT_CHUNK_BYTES, RpcErrorCode } from "./guest-wire.ts";

/** Host-chosen process id: unique per VM, used to correlate `output`/`exit` with `run`. */
export const ProcessId = z.string().min(1).max(128);

/** Signal names accepted by `signal` (the POSIX names Bun's `kill` understands). */
export const SignalName = z.string().regex(/^SIG[A-Z0-9]+$/, "must be a signal name such as SIGTERM");

/** `ready` notification params. */
export const ReadyParams = z.object({
  version: z.string().max(128),
  uptime_ms: z.number().nonnegative(),
}).strict();

/** `run` request params. `env` is the complete environment (the harness adds `AEGIS_HOST_IP` and a default `PATH`). */
export const RunParams = z.object({
  id: ProcessId,
  argv: z.array(z.string()).min(1, "argv must name a program"),
  env: z.record(z.string(), z.string()).default({}),
  cwd: z.string().optional(),
  /**
   * `name`, `uid`, `name:group` or `uid:gid`, resolved by the harness in the
   * rootfs's /etc/passwd and /etc/group (supplementary groups included); root when absent.
   */
  user: z.string().optional(),
  /**
   * Chroot into this directory of the rootfs instead of the rootfs itself
   * (a container of a pod VM, guest/harness/container-root.ts); relative, no `..`.
   */
  root_subdir: z.string().min(1).max(512).optional(),
  /** Extra supplementary gids added to the user's (needs `user`). */
  groups: z.array(z.number().int().min(0).max(4_294_967_294)).max(64).optional(),
  /** When this process exits the harness sends its `exit` and powers the VM off. */
  primary: z.boolean().optional(),
  /** Keep stdin open as a pipe, fed by `stdin.write` and closed by `stdin.close`. */
  stdin: z.boolean().optional(),
  /** Run on a new terminal of this size (stdin, stdout and stderr are the terminal; output is `stdout`). */
  tty: z.object({ cols: z.number().int().min(1).max(1000), rows: z.number().int().min(1).max(1000) }).strict().optional(),
  /** Flow-control window in raw output bytes (both streams); without it the host must keep up on its own. */
  window: z.number().int().min(OUTPUT_CHUNK_BYTES).max(MAX_OUTPUT_WINDOW).optional(),
  /**
   * The process serves one host client (an `exec` stream or session): when a
   * re-adopting daemon does not name it in `processes.end_untracked`, it is ended.
   * Processes without it (E2B's, which outlive their streams by design) are left alone.
   */
  ends_with_client: z.boolean().optional(),
}).strict();

/**
 * `output.ack` notification params (host -> guest): the host has consumed
 * `bytes` more raw output bytes of process `id` (a process started with a
 * `window`). Acks for unknown or finished processes are ignored.
 */
export const OutputAckParams = z.object({
  id: ProcessId,
  bytes: z.number().int().min(1).max(MAX_OUTPUT_WINDOW),
}).strict();

/** `run` result. */
export const RunResult = z.object({ pid: z.number().int() }).strict();

/** Sequence number of a replayable guest -> host notification (see the module docs). */
export const NotificationSeq = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);

/** `output` notification params: one ordered chunk of one stream, base64 of raw bytes. */
export const OutputParams = z.object({
  id: ProcessId,
  stream: z.enum(["stdout", "stderr"]),
  data: z.string(),
  seq: NotificationSeq.optional(),
}).strict();

/** `exit` notification params. `signal` is set when the process died of a signal; `code` is then 128+N. */
export const ExitParams = z.object({
  id: ProcessId,
  code: z.number().int(),
  signal: z.string().max(32).optional(),
  seq: NotificationSeq.optional(),
}).strict();

/** `ack` notification params (host -> guest): every seq'd notification up to `seq` is handled; the harness may forget them. */
export const AckParams = z.object({ seq: NotificationSeq }).strict();

/** Methods the harness's replay ring carries. */
export const ReplayableMethod = z.enum(["output", "exit", "tether.frame"]);

/** Most notifications one `resume` answer may carry (the ring's byte bound is what limits it in practice). */
export const MAX_REPLAY_ENTRIES = 200_000;

/** `resume` request params: replay what is held after `after_seq` (0: everything held). */
export const ResumeParams = z.object({ after_seq: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER) }).strict();

/** `resume` result: the held notifications after `after_seq`, oldest first, each validated by the host like a live one. */
export const ResumeResult = z.object({
  replay: z.array(z.object({ method: ReplayableMethod, params: z.record(z.string(), z.unknown()) }).strict()).max(MAX_REPLAY_ENTRIES),
  /** The harness's latest seq (what the host has after the replay). */
  last_seq: z.number().int().min(0),
}).strict();

/** `signal` request params. */
export const SignalParams = z.object({ id: ProcessId, signal: SignalName }).strict();

/** `stdin.write` request params: raw bytes (base64) for the process's stdin or terminal. */
export const StdinWriteParams = z.object({ id: ProcessId, data: z.string().max(Math.ceil(OUTPUT_CHUNK_BYTES / 3) * 4 + 4) }).strict();

/** `stdin.close` request params. */
export const StdinCloseParams = z.object({ id: ProcessId }).strict();

/** `tty.resize` request params. */
export const TtyResizeParams = z.object({ id: ProcessId, cols: z.number().int().min(1).max(1000), rows: z.number().int().min(1).max(1000) }).strict();

/** `clock.set` request params. */
export const ClockSetParams = z.object({ epoch_ms: z.number().nonnegative() }).strict();

/** `port.wait` request params. */
export const PortWaitParams = z.object({
  port: z.number().int().min(1).max(65535),
  timeout_ms: z.number().int().min(0).max(600_000),
}).strict();

/** `port.wait` result. `loopback_only`: every listener is bound to 127.0.0.1/::1, which port forwarding cannot reach. */
export const PortWaitResult = z.object({ ok: z.literal(true), loopback_only: z.boolean() }).strict();

/** `setup` request params. `entropy`: base64 of 32-256 random bytes from the host. */
export const SetupParams = z.object({
  hostname: z.string().regex(/^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/, "must be a DNS label"),
  epoch_ms: z.number().nonnegative(),
  entropy: z.string().min(44).max(344),
}).strict();

/** `ping` result. */
export const PingResult = z.object({ uptime_ms: z.number() }).strict();


/** Longest grace between SIGTERM and SIGKILL the host may ask for. */
export const MAX_END_GRACE_MS = 30_000;

/**
 * `processes.end_untracked` params: after a daemon re-adopts a VM (live
 * restore), the host names the client-bound processes it still follows
 * (`keep`); the harness ends every other process started with
 * `ends_with_client` (execs and sessions whose client went with the previous
 * daemon): SIGTERM to its process group, SIGKILL to the group after
 * `grace_ms`. Primary processes (an instance's or task's main command) and
 * processes without `ends_with_client` are never touched.
 */
export const EndUntrackedParams = z.object({
  keep: z.array(ProcessId).max(MAX_TRACKED_PROCESSES),
  grace_ms: z.number().int().min(0).max(MAX_END_GRACE_MS),
}).strict();

/** `processes.end_untracked` result: the ids being ended (SIGTERM sent), at most {@link MAX_TRACKED_PROCESSES}. */
export const EndUntrackedResult = z.object({ ended: z.array(ProcessId).max(MAX_TRACKED_PROCESSES) }).strict();

/** Generic "done" result for requests that return nothing. */
export const OkResult = z.object({ ok: z.literal(true) }).strict();

/** Request methods the harness serves, with their param and result schemas. */
export const ControlRequests = {
  run: { params: RunParams, result: RunResult },
  signal: { params: SignalParams, result: OkResult },
  "stdin.write": { params: StdinWriteParams, result: OkResult },
  "stdin.close": { params: StdinCloseParams, result: OkResult },
  "tty.resize": { params: TtyResizeParams, result: OkResult },
  "clock.set": { params: ClockSetParams, result: OkResult },
  ping: { params: z.object({}).strict().optional(), result: PingResult },
  stats: { params: z.object({}).strict().optional(), result: GuestStats },
  "port.wait": { params: PortWaitParams, result: PortWaitResult },
  setup: { params: SetupParams, result: OkResult },
  resume: { params: ResumeParams, result: ResumeResult },
  shutdown: { params: z.object({}).strict().optional(), result: OkResult },
  "processes.end_untracked": { params: EndUntrackedParams, result: EndUntrackedResult },
  "fs.stat": { params: FsStatParams, result: FileStat },
  "fs.list": { params: FsListParams, result: FsListResult },
  "fs.read": { params: FsReadParams, result: FsReadResult },
  "fs.write": { params: FsWriteParams, result: FsWriteResult },
  "fs.mkdir": { params: FsMkdirParams, result: OkResult },
  "fs.remove": { params: FsRemoveParams, result: OkResult },
  "fs.rename": { params: FsRenameParams, result: OkResult },
  "fs.symlink": { params: FsSymlinkParams, result: OkResult },
  "fs.setattr": { params: FsSetattrParams, result: OkResult },
  "fs.readonly": { params: FsReadonlyParams, result: OkResult },
  "fs.watch": { params: FsWatchParams, result: OkResult },
  "fs.unwatch": { params: FsUnwatchParams, result: OkResult },
} as const;

/** Notifications and their param schemas (both directions). */
/**
 * `tether.frame` notification params, both directions: host -> guest frames
 * are relayed by the harness to the agent on 127.0.0.1:7778, guest -> host
 * frames come back the same way. The frame itself is validated by the tether
 * schemas at the edges (aegisd ingress, aegisd egress), not here.
 */
export const TetherFrameParams = z.object({ frame: z.record(z.string(), z.unknown()), seq: NotificationSeq.optional() }).strict();

export const ControlNotifications = {
  ready: ReadyParams,
  output: OutputParams,
  exit: ExitParams,
  "tether.frame": TetherFrameParams,
  "fs.event": FsEventParams,
} as const;

/** A request method name. */
export type ControlRequestMethod = keyof typeof ControlRequests;
/** A notification method name. */
export type ControlNotificationMethod = keyof typeof ControlNotifications;
/** Params type of a request method (input form, before defaults). */
export type ControlRequestParams<M extends ControlRequestMethod> = z.input<(typeof ControlRequests)[M]["params"]>;
/** Result type of a request method. */
export type ControlRequestResult<M extends ControlRequestMethod> = z.output<(typeof ControlRequests)[M]["result"]>;
/** Params type of a notification. */
export type ControlNotificationParams<M extends ControlNotificationMethod> = z.output<(typeof ControlNotifications)[M]>;

/**
 * @module vmm/guest-process
 * Host-side helper for running one process in a guest over the control
 * channel: subscribes to its `output`/`exit` notifications BEFORE sending
 * `run` (the id is ours, so nothing can slip past), decodes output to bytes,
 * and resolves `exited` after the last output chunk has been delivered (the
 * harness sends `exit` only after both streams hit EOF).
 *
 * Flow control (`window`): the guest holds the process back once `window`
 * bytes are unacknowledged; each chunk is acknowledged (`output.ack`) when
 * the handler's returned promise settles, i.e. when the consumer has taken
 * it (the HTTP response of `aegis exec` has drained), so a stopped reader
 * stops the process and aegisd never holds more than about a window of it.
 */
import type { ControlChannel } from "./control-channel.ts";

/** How a guest process ended. `code` is 128+N when it died of signal N. */
export interface GuestExit {
  code: number;
  signal?: string;
}

/** Options of `startGuestProcess`. */
export interface GuestProcessOptions {
  /** Process id, unique within the VM; generated when omitted. */
  id?: string;
  argv: string[];
  env?: Record<string, string>;
  cwd?: string;
  /** User to run as (resolved by the harness in the rootfs); root when absent. */
  user?: string;
  /** Chroot into this directory of the rootfs (a container of a pod VM); the rootfs itself when absent. */
  rootSubdir?: string;
  /** Extra supplementary gids on top of the user's. */
  groups?: number[];
  /** Power the VM off when this process exits (task mode). */
  primary?: boolean;
  /** Output handlers; with `window`, a returned promise holds the chunk's credit until it settles. */
  onStdout?: (data: Uint8Array) => unknown;
  onStderr?: (data: Uint8Array) => unknown;
  /** Flow-control window in raw bytes (see the module doc); without it the guest never waits for us. */
  window?: number;
  /** Keep stdin open for {@link GuestProcess.write}. */
  stdin?: boolean;
  /** Run on a terminal of this size (its output arrives as stdout). */
  tty?: { cols: number; rows: number };
  /** Timeout of the `run` request itself (not of the process). */
  timeoutMs?: number;
  /** The process serves one client (exec, session): a daemon that re-adopts the VM without it ends it (daemon/instances/orphans.ts). */
  endsWithClient?: boolean;
}

/** A started guest process. */
export interface GuestProcess {
  id: string;
  pid: number;
  /** Resolves when the process has exited and all its output was delivered; rejects if the VM goes away first. */
  exited: Promise<GuestExit>;
  /** Send a signal to the process group (e.g. "SIGINT"). */
  signal(name: string): Promise<void>;
  /** Write to its stdin or terminal (started with `stdin` or `tty`), in order. */
  write(bytes: Uint8Array): Promise<void>;
  /** Close its stdin (a terminal gets an EOF character). */
  closeStdin(): Promise<void>;
  /** Resize its terminal. */
  resize(cols: number, rows: number): Promise<void>;
}

/** Largest raw chunk of one `stdin.write`. */
const STDIN_CHUNK_BYTES = 16 * 1024;

let counter = 0;

/** What {@link attachGuestProcess} gives: the process's end, and the unsubscribe. */
export interface AttachedProcess {
  /** Resolves when the process exited and all its output was delivered; rejects if the VM goes away first. */
  exited: Promise<GuestExit>;
  /** Stop listening (the process is forgotten, not signalled). */
  detach(): void;
}

/**
 * Follow the output and exit of guest process `id` behind `channel`, which
 * may already run: {@link startGuestProcess} subscribes before its `run`,
 * and a daemon that adopted a running VM subscribes before the replay of
 * what the guest held (live restore).
 */
export function attachGuestProcess(channel: ControlChannel, id: string, opts: Pick<GuestProcessOptions, "onStdout" | "onStderr" | "window"> & { what?: string }): AttachedProcess {
  let resolveExit!: (e: GuestExit) => void;
  let rejectExit!: (e: Error) => void;
  const exited = new Promise<GuestExit>((res, rej) => {
    resolveExit = res;
    rejectExit = rej;
  });
  // The VM can die before the caller gets to await `exited` (even between the
  // `run` reply and the caller's continuation). Mark the rejection handled
  // here; callers that await `exited` still see it.
  exited.catch(() => undefined);
  const offOutput = channel.onNotification("output", (p) => {
    if (p.id !== id) return;
    const bytes = Buffer.from(p.data, "base64");
    const taken = p.stream === "stdout" ? opts.onStdout?.(bytes) : opts.onStderr?.(bytes);
    if (opts.window === undefined || bytes.length === 0) return;
    const ack = (): void => {
      // The VM may be gone by the time a slow reader catches up; then there is nobody to credit.
      if (channel.connected) channel.notify("output.ack", { id, bytes: bytes.length });
    };
    if (taken instanceof Promise) taken.then(ack, ack);
    else ack();
  });
  const cleanup = (): void => {
    offOutput();
    offExit();
    offClose();
  };
  const offExit = channel.onNotification("exit", (p) => {
    if (p.id !== id) return;
    cleanup();
    resolveExit(p.signal ? { code: p.code, signal: p.signal } : { code: p.code });
  });
  const offClose = channel.onClose((reason) => {
    cleanup();
    rejectExit(new Error(`guest process ${id}${opts.what ? ` (${opts.what})` : ""} lost: ${reason}`));
  });
  return { exited, detach: cleanup };
}

/** Start `argv` in the guest behind `channel`. */
export async function startGuestProcess(channel: ControlChannel, opts: GuestProcessOptions): Promise<GuestProcess> {
  const id = opts.id ?? `p${Date.now().toString(36)}-${(counter++).toString(36)}`;
  const { exited, detach: cleanup } = attachGuestProcess(channel, id, { ...opts, what: opts.argv[0] });
  let pid: number;
  try {
    ({ pid } = await channel.call(
      "run",
      {
        id,
        argv: opts.argv,
        env: opts.env ?? {},
        cwd: opts.cwd,
        user: opts.user,
        ...(opts.groups && opts.groups.length > 0 ? { groups: opts.groups } : {}),
        primary: opts.primary,
        ...(opts.window === undefined ? {} : { window: opts.window }),
        ...(opts.stdin ? { stdin: true } : {}),
        ...(opts.tty ? { tty: opts.tty } : {}),
        // Only when set, so other runs still reach a harness older than the field.
        ...(opts.endsWithClient ? { ends_with_client: true } : {}),
        ...(opts.rootSubdir ? { root_subdir: opts.rootSubdir } : {}),
      },
      { timeoutMs: opts.timeoutMs ?? 30_000 },
    ));
  } catch (err) {
    cleanup();
    throw err;
  }
  let inputs: Promise<void> = Promise.resolve();
  return {
    id,
    pid,
    exited,
    signal: async (name) => {
      await channel.call("signal", { id, signal: name }, { timeoutMs: 10_000 });
    },
    // One write at a time, so input reaches the process in order.
    write: (bytes) => {
      inputs = inputs.then(async () => {
        for (let off = 0; off < bytes.length; off += STDIN_CHUNK_BYTES) {
          await channel.call("stdin.write", { id, data: Buffer.from(bytes.subarray(off, off + STDIN_CHUNK_BYTES)).toString("base64") }, { timeoutMs: 30_000 });
        }
      });
      return inputs;
    },
    closeStdin: () => {
      inputs = inputs.then(async () => void (await channel.call("stdin.close", { id }, { timeoutMs: 10_000 })));
      return inputs;
    },
    resize: async (cols, rows) => {
      await channel.call("tty.resize", { id, cols, rows }, { timeoutMs: 10_000 });
    },
  };
}

/** Run a process to completion and collect its output (for short commands and tests). */
export async function runInGuest(
  channel: ControlChannel,
  opts: Omit<GuestProcessOptions, "onStdout" | "onStderr">,
): Promise<GuestExit & { stdout: Buffer; stderr: Buffer }> {
  const out: Uint8Array[] = [];
  const err: Uint8Array[] = [];
  const p = await startGuestProcess(channel, { ...opts, onStdout: (d) => void out.push(d), onStderr: (d) => void err.push(d) });
  const exit = await p.exited;
  return { ...exit, stdout: Buffer.concat(out), stderr: Buffer.concat(err) };
}

/**
 * @module daemon/instances/exec
 * `exec` in an instance: wake it, run the command beside its main process,
 * and stream output lines then the exit record. The exec counts as activity
 * for the idle policy from start to end. With `timeout_s` the process is
 * killed (SIGKILL to its process group) when the time is up, and the exit
 * record says `timed_out: true`: the deadline holds even when the caller
 * has gone away or stopped reading.
 *
 * Backpressure: the guest process runs with a flow-control window of
 * {@link EXEC_OUTPUT_WINDOW} bytes, and a chunk's credit returns only once
 * its line has left aegisd's response queue (ndjson.ts), so a client that
 * stops reading (Ctrl+Z, `| less`) stops the process within about a window,
 * and aegisd holds at most window + queue of its output.
 */
import type { z } from "zod";
import { isAppError } from "../../api/errors.ts";
import { RpcError } from "../../api/jsonrpc.ts";
import { RpcErrorCode } from "../../api/schema/control.ts";
import type { ExecLine, ExecRequest } from "../../api/schema/instances.ts";
import { type GuestProcess, type GuestProcessOptions, startGuestProcess } from "../../vmm/guest-process.ts";
import { encodeChunk } from "../../api/log-chunks.ts";
import type { InstancesService } from "./service.ts";

/** Raw output bytes of one exec that may be unacknowledged before the guest holds the process back. */
export const EXEC_OUTPUT_WINDOW = 1024 * 1024;

/**
 * Wake instance `id` and start `req` in it with the instance's environment
 * (its env, secrets, workdir and user) under the request's, like `docker
 * exec`. `opts` adds output handlers, stdin, a terminal or a window.
 */
export async function startInInstance(
  instances: InstancesService,
  id: string,
  req: { command: string[]; env: Record<string, string>; cwd?: string; user?: string; root_subdir?: string; groups?: number[] },
  opts: Omit<GuestProcessOptions, "argv" | "env" | "cwd" | "user" | "rootSubdir" | "groups">,
): Promise<GuestProcess> {
  const rt = await instances.ensureRunning(id);
  if (!rt.vm) throw new Error(`instance ${id} has no running VM`);
  const base = await instances.commandEnvironment(id);
  return startGuestProcess(rt.vm.channel, { ...opts, argv: req.command, env: { ...base.env, ...req.env }, cwd: req.cwd ?? base.cwd, user: req.user ?? base.user, ...(req.root_subdir ? { rootSubdir: req.root_subdir } : {}), groups: req.groups });
}

/** Whether the guest refused to start the program itself (not found, unknown user): exit 127 territory. */
export function isSpawnFailure(err: unknown): err is RpcError {
  return err instanceof RpcError && err.code === RpcErrorCode.spawnFailed;
}

/** Run `req` in the instance, emitting NDJSON lines through `emit`. */
export async function execInInstance(instances: InstancesService, ref: string, req: z.infer<typeof ExecRequest>, emit: (line: ExecLine) => Promise<void>): Promise<void> {
  const id = instances.row(ref).id;
  instances.activity.started(id);
  try {
    const proc = await startInInstance(instances, id, req, {
      window: EXEC_OUTPUT_WINDOW,
      endsWithClient: true,
      onStdout: (b) => emit({ type: "output", stream: "stdout", ...encodeChunk(b) }),
      onStderr: (b) => emit({ type: "output", stream: "stderr", ...encodeChunk(b) }),
    });
    let timedOut = false;
    const timer =
      req.timeout_s === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            // The caller learns why the deadline did not hold (the process may also have just exited).
            proc.signal("SIGKILL").catch((err: unknown) => void emit({ type: "output", stream: "stderr", text: `aegis: timeout after ${req.timeout_s} s, but SIGKILL failed: ${(err as Error).message}\n` }));
          }, req.timeout_s * 1000);
    const exit = await proc.exited.finally(() => clearTimeout(timer));
    await emit({ type: "exit", code: exit.code, signal: exit.signal ?? null, ...(timedOut ? { timed_out: true } : {}) });
  } catch (err) {
    // A program that cannot start (not found, unknown user) exits 127 with the reason, as in a shell or `docker exec`.
    if (isSpawnFailure(err)) {
      await emit({ type: "output", stream: "stderr", text: `aegis: ${err.message}\n` });
      await emit({ type: "exit", code: 127, signal: null });
      return;
    }
    const e = isAppError(err) ? err : { code: "backend_error", message: (err as Error).message, hint: undefined };
    void emit({ type: "error", error: { code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}) } });
  } finally {
    instances.activity.ended(id);
  }
}

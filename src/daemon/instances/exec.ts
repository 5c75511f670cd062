/**
 * @module daemon/instances/exec
 * `exec` in an instance: wake it, run the command beside its main process,
 * and stream output lines then the exit record. The exec counts as activity
 * for the idle policy from start to end.
 */
import type { z } from "zod";
import { isAppError } from "../../api/errors.ts";
import type { ExecLine, ExecRequest } from "../../api/schema/instances.ts";
import { startGuestProcess } from "../../vmm/guest-process.ts";
import { encodeChunk } from "../../api/log-chunks.ts";
import type { InstancesService } from "./service.ts";

/** Run `req` in the instance, emitting NDJSON lines through `emit`. */
export async function execInInstance(instances: InstancesService, ref: string, req: z.infer<typeof ExecRequest>, emit: (line: ExecLine) => void): Promise<void> {
  const id = instances.row(ref).id;
  instances.activity.started(id);
  try {
    const rt = await instances.ensureRunning(id);
    if (!rt.vm) throw new Error(`instance ${ref} has no running VM`);
    // Like `docker exec`: the instance's environment (its env, secrets, workdir and user), overridden by the request.
    const base = await instances.commandEnvironment(id);
    const proc = await startGuestProcess(rt.vm.channel, {
      argv: req.command,
      env: { ...base.env, ...req.env },
      cwd: req.cwd ?? base.cwd,
      user: req.user ?? base.user,
      onStdout: (b) => emit({ type: "output", stream: "stdout", ...encodeChunk(b) }),
      onStderr: (b) => emit({ type: "output", stream: "stderr", ...encodeChunk(b) }),
    });
    const exit = await proc.exited;
    emit({ type: "exit", code: exit.code, signal: exit.signal ?? null });
  } catch (err) {
    const e = isAppError(err) ? err : { code: "backend_error", message: (err as Error).message, hint: undefined };
    emit({ type: "error", error: { code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}) } });
  } finally {
    instances.activity.ended(id);
  }
}

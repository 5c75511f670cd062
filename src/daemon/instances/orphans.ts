/**
 * @module daemon/instances/orphans
 * Execs orphaned by a daemon restart. An `aegis instance exec` (or exec
 * session, or E2B process) streams to a client through aegisd; when aegisd
 * dies, that client's connection dies with it, and a new daemon has no way
 * to hand the process's output, stdin or exit code to anyone (the CLI
 * already tells its user they are lost). Left alone, a quiet one (`cat`
 * waiting on stdin, `sleep 1000`) would run in the instance forever. So a
 * daemon that re-adopts an instance's VM asks the harness to end every
 * non-primary process it does not follow itself (`processes.end_untracked`,
 * SIGTERM then SIGKILL after {@link ORPHAN_GRACE_MS}), as `docker exec`
 * processes end with their client. The instance's main process is primary
 * and never touched; tasks run in VMs of their own (their command is the
 * primary process) and are never asked.
 *
 * Everything the guest answers is bounded by the result schema; a failure
 * (an older harness without the method, a timeout, a bad answer) is logged
 * and the instance keeps serving: ending orphans is cleanup, never a reason
 * to lose the VM.
 */
import { RpcError } from "../../api/jsonrpc.ts";
import { RpcErrorCode } from "../../api/schema/control.ts";
import type { ControlChannel } from "../../vmm/control-channel.ts";
import type { Logger } from "../api/deps.ts";

/** Time an orphaned exec gets between SIGTERM and SIGKILL (what `docker stop` gives, shortened: nobody waits on it). */
export const ORPHAN_GRACE_MS = 2000;

/** How long the harness has to answer. */
const END_UNTRACKED_TIMEOUT_MS = 10_000;

/** Most ended ids written to the log line (the count is always exact up to the schema's bound). */
const LOGGED_IDS = 16;

/**
 * Ask the harness behind `channel` to end every non-primary process except
 * `keep` (a freshly adopted VM: the new daemon follows none). Never throws;
 * returns the ids the harness says it is ending (empty on failure).
 */
export async function endOrphanedExecs(channel: Pick<ControlChannel, "call">, instance: string, log: Logger, keep: string[] = []): Promise<string[]> {
  try {
    const { ended } = await channel.call("processes.end_untracked", { keep, grace_ms: ORPHAN_GRACE_MS }, { timeoutMs: END_UNTRACKED_TIMEOUT_MS });
    if (ended.length > 0) log.info("ended execs orphaned by the aegisd restart", { instance, count: ended.length, ids: ended.slice(0, LOGGED_IDS) });
    return ended;
  } catch (err) {
    const old = err instanceof RpcError && err.code === RpcErrorCode.methodNotFound;
    log.warn(old ? "the instance's harness predates ending orphaned execs; execs cut off by the aegisd restart keep running until the instance restarts" : "could not end execs orphaned by the aegisd restart", {
      instance,
      error: err instanceof Error ? err.message.slice(0, 300) : String(err).slice(0, 300),
    });
    return [];
  }
}

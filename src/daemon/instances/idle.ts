/**
 * @module daemon/instances/idle
 * The idle policy as one pure decision: an instance with no open activity
 * and no keepalive lease is paused after `pause_after_s` idle seconds, and
 * stopped with a memory snapshot after `stop_after_s` more; a backend that
 * cannot pause stops it (without a snapshot) at the sum. 0 means never.
 */
import type { InstanceState } from "../../api/schema/instances.ts";

/** What the idle policy wants done now. */
export type IdleAction = "pause" | "snapshot-stop" | "stop" | null;

/** Decide for one instance whose VM runs. */
export function idleAction(
  s: { state: InstanceState; pauseAfterS: number; stopAfterS: number; idleS: number; busy: boolean },
  canPause: boolean,
): IdleAction {
  if (s.busy) return null;
  const { state, pauseAfterS, stopAfterS, idleS } = s;
  if (state === "running" && canPause && pauseAfterS > 0 && idleS >= pauseAfterS) return "pause";
  if (state === "paused" && stopAfterS > 0 && idleS >= pauseAfterS + stopAfterS) return "snapshot-stop";
  if (state === "running" && !canPause && stopAfterS > 0 && idleS >= pauseAfterS + stopAfterS) return "stop";
  return null;
}

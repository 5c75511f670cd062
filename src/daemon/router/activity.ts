/**
 * @module daemon/router/activity
 * Balanced connection accounting: every proxied request, WebSocket or TCP
 * connection calls `activityStarted` once and `activityEnded` exactly once,
 * however it ends (completion, client abort, upstream error, router stop).
 */
import type { RouterHooks, RouterLog } from "./types.ts";

/** Ends one activity; calling it again is a no-op. */
export type EndActivity = () => void;

/**
 * Report the start of one activity on `instanceId` and return its idempotent
 * end. A throwing `activityStarted` propagates (the request fails with a
 * 500); a throwing `activityEnded` is logged, because it runs from stream and
 * socket callbacks where nothing could report it to a client.
 */
export function startActivity(hooks: RouterHooks, instanceId: string, log: RouterLog): EndActivity {
  hooks.activityStarted(instanceId);
  let open = true;
  return () => {
    if (!open) return;
    open = false;
    try {
      hooks.activityEnded(instanceId);
    } catch (err) {
      log("router: activityEnded hook threw", { instanceId, error: String(err) });
    }
  };
}

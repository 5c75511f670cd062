/**
 * @module daemon/router/wake
 * The first step of every proxied HTTP request and WebSocket: count the
 * activity, wake the instance (`ensureReachable`) and, when that fails, end
 * the activity and answer 503 with the hook's message.
 */
import { type EndActivity, startActivity } from "./activity.ts";
import { causeOf, describeInstance, errorResponse, wakeFailed } from "./responses.ts";
import type { HostAddress, RouterHooks, RouterLog, RouteTarget, ServedInstance } from "./types.ts";

/** A woken target: where to connect, and the activity to end when the proxying ends. */
export interface Woken {
  addr: HostAddress;
  end: EndActivity;
  target: RouteTarget;
  /** The instance as named in messages. */
  what: string;
}

/** Wake `instance` for one request; resolves with the target, or with the 503 response to send. */
export async function wakeForRequest(instance: ServedInstance, ctx: { hooks: RouterHooks; log: RouterLog }): Promise<Woken | Response> {
  const target = { instanceId: instance.instanceId, guestPort: instance.guestPort };
  const what = describeInstance(instance);
  const end = startActivity(ctx.hooks, instance.instanceId, ctx.log);
  try {
    return { addr: await ctx.hooks.ensureReachable(target), end, target, what };
  } catch (err) {
    end();
    ctx.log("router: wake failed", { instanceId: instance.instanceId, guestPort: instance.guestPort, error: causeOf(err) });
    return errorResponse(wakeFailed(what, target, err));
  }
}

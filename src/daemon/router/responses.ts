/**
 * @module daemon/router/responses
 * The router's own answers, in the project's error envelope
 * (`{"error":{"code","message","hint"?,"data"?}}`): 404 for no route, 502 when
 * the guest port does not answer, 503 when the instance cannot be woken.
 */
import { AppError, isAppError } from "../../api/errors.ts";
import type { RouteTarget, ServedInstance } from "./types.ts";

/** Serialise an AppError as its HTTP response. */
export function errorResponse(err: AppError): Response {
  return Response.json(err.toJSON(), { status: err.status });
}

/** `instance "web" (inst-1)`, or just the id when the handle is the id. */
export function describeInstance(inst: Pick<ServedInstance, "instanceId"> & { handle?: string }): string {
  return inst.handle && inst.handle !== inst.instanceId ? `instance "${inst.handle}" (${inst.instanceId})` : `instance "${inst.instanceId}"`;
}

/** The message of any thrown value, with Bun's error code (`ECONNREFUSED`, `ConnectionRefused`) when present. */
export function causeOf(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === "string" && !err.message.includes(code) ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}

/** 503: `ensureReachable` rejected; its message is user-facing and is kept. */
export function wakeFailed(what: string, target: RouteTarget, err: unknown): AppError {
  const hint = isAppError(err) ? err.hint : undefined;
  return new AppError("unavailable", `could not wake ${what} for guest port ${target.guestPort}: ${causeOf(err)}`, hint ?? `check 'aegis instance info ${target.instanceId}' and 'aegis logs ${target.instanceId}'`);
}

/** 502: the guest port did not answer or broke the exchange. */
export function upstreamFailed(what: string, target: RouteTarget, addr: { host: string; port: number }, err: unknown): AppError {
  return new AppError(
    "backend_error",
    `${what} did not answer on guest port ${target.guestPort} (forwarded from ${addr.host}:${addr.port}): ${causeOf(err)}`,
    `is the server in the guest listening on 0.0.0.0:${target.guestPort}? see 'aegis logs ${target.instanceId}'`,
  );
}

/**
 * @module api/errors
 * The typed error hierarchy shared by the daemon and its clients. Every error
 * has a stable `code`, travels as `{"error": {"code", "message", "hint"?,
 * "data"?}}`, and is recognised by name (not `instanceof`) across the wire.
 */
import { z } from "zod";

/** Stable error codes and the HTTP status each maps to (the one mapping, STYLE rule 12). */
export const errorStatus = {
  invalid_request: 400,
  not_found: 404,
  conflict: 409,
  precondition_failed: 409,
  payload_too_large: 413,
  backend_error: 502,
  unavailable: 503,
  internal: 500,
} as const;

/** One of the stable error codes. */
export type ErrorCode = keyof typeof errorStatus;

/** The JSON error envelope. */
export const ErrorEnvelope = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    hint: z.string().optional(),
    data: z.record(z.string(), z.unknown()).optional(),
  }),
});

/** Base of every error the API reports. */
export class AppError extends Error {
  override name = "AppError";
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly hint?: string,
    readonly data?: Record<string, unknown>,
  ) {
    super(message);
  }
  /** HTTP status for this error. */
  get status(): number {
    return errorStatus[this.code];
  }
  /** The wire form. */
  toJSON(): z.infer<typeof ErrorEnvelope> {
    return { error: { code: this.code, message: this.message, hint: this.hint, data: this.data } };
  }
}

/** 400: the request itself is wrong. */
export class InvalidRequest extends AppError {
  constructor(message: string, hint?: string, data?: Record<string, unknown>) {
    super("invalid_request", message, hint, data);
  }
}
/** 404: the named resource does not exist. */
export class NotFound extends AppError {
  constructor(message: string, hint?: string) {
    super("not_found", message, hint);
  }
}
/** 409: the resource already exists or conflicts with another. */
export class Conflict extends AppError {
  constructor(message: string, hint?: string) {
    super("conflict", message, hint);
  }
}
/** 409: the operation is not allowed in the resource's current lifecycle state. */
export class PreconditionFailed extends AppError {
  constructor(message: string, hint?: string, data?: { current: string; required: string[] }) {
    super("precondition_failed", message, hint, data);
  }
}
/** 502: the VM backend (QEMU, libkrun) failed. */
export class BackendError extends AppError {
  constructor(message: string, hint?: string) {
    super("backend_error", message, hint);
  }
}

/** Name-based guard: true for AppError instances and for errors rebuilt from the wire. */
export function isAppError(x: unknown): x is AppError {
  return typeof x === "object" && x !== null && (x as { name?: unknown }).name === "AppError";
}

/** Rebuild an AppError from a parsed envelope (client side). */
export function fromEnvelope(body: z.infer<typeof ErrorEnvelope>): AppError {
  const code = (body.error.code in errorStatus ? body.error.code : "internal") as ErrorCode;
  return new AppError(code, body.error.message, body.error.hint, body.error.data);
}

/**
 * @module daemon/images/errors
 * Error constructors for the image pipeline. They map onto the API's typed
 * hierarchy (`src/api/errors.ts`): a bad reference or a hostile layer is the
 * caller's input (400), a missing image or tag is 404, and a registry that
 * answers wrongly or serves bytes that fail verification is an upstream
 * failure (502, `backend_error`).
 */
import { AppError, InvalidRequest, NotFound } from "../../api/errors.ts";

/** A reference string that does not parse; names the wrong part. */
export function badReference(ref: string, part: string, why: string, hint?: string): InvalidRequest {
  return new InvalidRequest(`invalid image reference "${ref}": ${part} ${why}`, hint ?? "examples: alpine:3.21, ghcr.io/org/name:tag, localhost:5000/x@sha256:<64 hex>, oci:DIR[:TAG], docker-archive:FILE");
}

/** The registry or the local source has no such image, tag or blob. */
export function imageNotFound(what: string, hint?: string): NotFound {
  return new NotFound(what, hint);
}

/** The registry (or an archive) misbehaved: bad status, bad JSON, wrong digest. */
export class RegistryError extends AppError {
  constructor(message: string, hint?: string, data?: Record<string, unknown>) {
    super("backend_error", message, hint, data);
  }
}

/** Bytes whose sha256 differs from the digest that named them. */
export class DigestMismatch extends RegistryError {
  constructor(
    readonly what: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`digest mismatch for ${what}: expected ${expected}, got ${actual}`, "the registry or the file served corrupted or tampered content; nothing was cached, retry the pull or check the source", { expected, actual });
  }
}

/** A layer entry the unpacker refuses (escape attempt, tar bomb, bad archive). */
export class UnpackRefused extends InvalidRequest {
  constructor(
    readonly reason: "absolute-path" | "dot-dot" | "symlink-escape" | "hardlink-escape" | "too-many-entries" | "too-large" | "bad-archive" | "bad-entry",
    message: string,
    hint?: string,
  ) {
    super(message, hint, { reason });
  }
}

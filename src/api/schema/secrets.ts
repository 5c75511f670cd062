/**
 * @module api/schema/secrets
 * Secret endpoints: workspace scope `/v1/secrets/{key}` and app scope
 * `/v1/apps/{app}/secrets/{key}`. Lists carry names only, never values.
 */
import { z } from "zod";
import { SecretName } from "./common.ts";

/** Largest secret value accepted (64 KiB). */
export const MAX_SECRET_BYTES = 64 * 1024;

/** Body of `PUT .../secrets/{key}`. */
export const SecretPut = z
  .object({ value: z.string().min(1, "must not be empty").max(MAX_SECRET_BYTES, `must be at most ${MAX_SECRET_BYTES} characters`) })
  .strict();

/** One entry of a secret list: the name and timestamps, never the value. */
export const SecretInfo = z.object({ name: SecretName, created_at: z.string(), updated_at: z.string() });

/** `GET .../secrets`. */
export const SecretList = z.object({ scope: z.string(), secrets: z.array(SecretInfo) });

/** `GET /v1/secrets/{key}`: the decrypted value (Unix socket only). */
export const SecretValue = z.object({ name: SecretName, value: z.string() });

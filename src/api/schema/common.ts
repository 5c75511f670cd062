/**
 * @module api/schema/common
 * Field schemas reused across the API (names, ports, timestamps).
 */
import { z } from "zod";

/** Resource names (apps, kits, instances): lowercase DNS-label style, so they also work as hostnames. */
export const ResourceName = z
  .string()
  .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, "must be 1-63 lowercase letters, digits or '-', not starting or ending with '-'");

/** Secret names use environment-variable syntax because they are injected as env vars. */
export const SecretName = z
  .string()
  .max(128, "must be at most 128 characters")
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "must look like an environment variable name (letters, digits, '_', not starting with a digit)");

/** A TCP port number. */
export const Port = z.number().int().min(1).max(65535);

/** An ISO-8601 timestamp string. */
export const Timestamp = z.string();

/** Response of deletions and other commands with nothing to return. */
export const Ok = z.object({ ok: z.literal(true) });

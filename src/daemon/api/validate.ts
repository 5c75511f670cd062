/**
 * @module daemon/api/validate
 * Request parsing with the shared zod schemas. Every failure is an
 * InvalidRequest whose message names the offending field and value.
 */
import type { Context } from "hono";
import type { z } from "zod";
import { InvalidRequest } from "../../api/errors.ts";
import { formatIssues } from "../../api/issues.ts";

/** Parse a value with a schema or throw InvalidRequest naming what is wrong. */
export function parseWith<S extends z.ZodType>(schema: S, value: unknown, what: string): z.infer<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw new InvalidRequest(`invalid ${what}: ${formatIssues(result.error.issues)}`);
  return result.data;
}

/** Read and validate a JSON request body. Malformed JSON is a 400 that says so. */
export async function jsonBody<S extends z.ZodType>(c: Context, schema: S): Promise<z.infer<S>> {
  const text = await c.req.text();
  let value: unknown;
  try {
    value = text.length === 0 ? undefined : JSON.parse(text);
  } catch (err) {
    throw new InvalidRequest(`malformed JSON body: ${(err as Error).message}`, "send a JSON object with Content-Type: application/json");
  }
  if (value === undefined) throw new InvalidRequest("missing JSON body", "send a JSON object with Content-Type: application/json");
  return parseWith(schema, value, "request body");
}

/** Like {@link jsonBody}, but an empty body counts as `{}` (for optional options). */
export async function optionalJsonBody<S extends z.ZodType>(c: Context, schema: S): Promise<z.infer<S>> {
  const text = await c.req.text();
  let value: unknown = {};
  if (text.length > 0) {
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new InvalidRequest(`malformed JSON body: ${(err as Error).message}`, "send a JSON object, or no body");
    }
  }
  return parseWith(schema, value, "request body");
}

/** Validate a path parameter. */
export function param<S extends z.ZodType>(c: Context, name: string, schema: S): z.infer<S> {
  const value = c.req.param(name);
  const result = schema.safeParse(value);
  if (!result.success) throw new InvalidRequest(`invalid ${name} "${value}": ${result.error.issues[0]?.message ?? "invalid"}`);
  return result.data;
}

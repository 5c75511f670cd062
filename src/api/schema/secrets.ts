/**
 * @module api/schema/secrets
 * Secret endpoints: workspace scope `/v1/secrets/{key}` and app scope
 * `/v1/apps/{app}/secrets/{key}`. Lists carry names only, never values.
 */
import { z } from "zod";
import { SecretName } from "./common.ts";
import { EgressBindingError, parseBoundHost, type SecretEgress } from "../egress-secrets.ts";

/** Largest secret value accepted (64 KiB). */
export const MAX_SECRET_BYTES = 64 * 1024;

/** A bound host `NAME[:PORT]` (api/egress-secrets.ts), canonicalised. */
const BoundHostText = z.string().transform((s, ctx) => {
  try {
    const h = parseBoundHost(s);
    return h.port === 443 ? h.name : `${h.name}:${h.port}`;
  } catch (err) {
    ctx.addIssue({ code: "custom", message: err instanceof EgressBindingError ? err.message : String(err) });
    return z.NEVER;
  }
});

/**
 * Body of `PUT .../secrets/{key}`. `hosts`: keep the value out of the guest
 * and substitute it for these hosts only; `raw`: put the value itself into
 * the guest; neither: the default (`auto`: LLM keys bound to their provider).
 */
export const SecretPut = z
  .object({
    value: z.string().min(1, "must not be empty").max(MAX_SECRET_BYTES, `must be at most ${MAX_SECRET_BYTES} characters`),
    hosts: z.array(BoundHostText).min(1, "must name at least one host").max(16, "at most 16 hosts").optional(),
    raw: z.literal(true).optional(),
  })
  .strict()
  .refine((b) => !(b.hosts && b.raw), { message: "hosts and raw exclude each other (a raw secret is not substituted anywhere)", path: ["raw"] });

/** The stored binding a `SecretPut` asks for. */
export function putEgress(body: { hosts?: string[]; raw?: true }): SecretEgress {
  if (body.raw) return { mode: "raw" };
  if (body.hosts) return { mode: "hosts", hosts: [...new Set(body.hosts)] };
  return { mode: "auto" };
}

/** How a secret reaches guests (never its value). */
export const SecretEgressInfo = z.union([
  z.object({ mode: z.literal("auto") }),
  z.object({ mode: z.literal("raw") }),
  z.object({ mode: z.literal("hosts"), hosts: z.array(z.string()) }),
]);

/** One entry of a secret list: the name, binding and timestamps, never the value. */
export const SecretInfo = z.object({ name: SecretName, egress: SecretEgressInfo, created_at: z.string(), updated_at: z.string() });

/** `GET .../secrets`. */
export const SecretList = z.object({ scope: z.string(), secrets: z.array(SecretInfo) });

/** `GET /v1/secrets/{key}`: the decrypted value (Unix socket only). */
export const SecretValue = z.object({ name: SecretName, value: z.string() });

/**
 * @module api/schema/common
 * Field schemas reused across the API (names, ports, timestamps).
 */
import { z } from "zod";
import { parseRules } from "../network-policy.ts";

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

/**
 * A VM's network policy in API bodies (api/network-policy.ts): `mode: none`
 * is `--no-network`; `rules` are `--allow`/`--deny` in order, first match wins.
 */
export const NetworkPolicySchema = z
  .object({
    mode: z.enum(["default", "none"]).default("default"),
    rules: z
      .array(
        z
          .object({ action: z.enum(["allow", "deny"]), target: z.string().min(1).max(300) })
          .strict()
          .superRefine((r, ctx) => {
            try {
              parseRules([r]);
            } catch (err) {
              ctx.addIssue({ code: "custom", message: (err as Error).message });
            }
          }),
      )
      .max(256, "at most 256 network rules")
      .default([]),
  })
  .strict()
  .refine((p) => p.mode === "default" || p.rules.length === 0, "mode none takes no rules (--no-network with --allow/--deny)");
export type NetworkPolicyBody = z.infer<typeof NetworkPolicySchema>;

/** A stored network policy as returned by the API (instances, apps). */
export const NetworkPolicyView = z.object({ mode: z.enum(["default", "none"]), rules: z.array(z.object({ action: z.enum(["allow", "deny"]), target: z.string() })) });

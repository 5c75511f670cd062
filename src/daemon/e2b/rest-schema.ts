/**
 * @module daemon/e2b/rest-schema
 * Our schemas of the E2B REST bodies aegisd accepts, written from what the
 * pinned e2b SDK sends. Unknown fields are refused (a newer SDK's option we
 * do not implement must not be silently dropped), and so are options Aegis
 * cannot honour (network header transforms and proxies: network.ts; volume
 * mounts, the MCP gateway): each names the field and what to do instead.
 */
import { z } from "zod";
import { E2bNetwork } from "./network.ts";

const Metadata = z.record(z.string().min(1).max(256), z.string().max(4096)).refine((m) => Object.keys(m).length <= 64, "at most 64 metadata entries");
const EnvVars = z.record(z.string(), z.string().max(128 * 1024)).superRefine((env, ctx) => {
  for (const k of Object.keys(env)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]{0,255}$/.test(k)) ctx.addIssue({ code: "custom", path: [k], message: `"${k}" is not an environment variable name (letters, digits, _; not starting with a digit)` });
  }
});

/** Lifetime in seconds: at least 1 s, at most a day (E2B's Pro limit). */
export const TimeoutSeconds = z.number().int().min(1, "must be at least 1 second").max(86_400, "must be at most 86400 seconds (24 h)");

/** `POST /sandboxes` and `POST /v2/sandboxes`. */
export const NewSandbox = z
  .object({
    templateID: z.string().min(1).max(512),
    timeout: TimeoutSeconds.optional(),
    autoPause: z.boolean().optional(),
    autoPauseMemory: z.boolean().optional(),
    autoResume: z.object({ enabled: z.boolean() }).strict().optional(),
    secure: z.boolean().optional(),
    allow_internet_access: z.boolean().optional(),
    network: E2bNetwork.optional(),
    metadata: Metadata.optional(),
    envVars: EnvVars.optional(),
    mcp: z.unknown().optional(),
    volumeMounts: z.array(z.unknown()).optional(),
    iam: z.unknown().optional(),
  })
  .strict();
export type NewSandbox = z.infer<typeof NewSandbox>;

/** `POST /sandboxes/{id}/connect` (v1 and v2). */
export const ConnectSandbox = z.object({ timeout: TimeoutSeconds.optional(), memory: z.boolean().optional() }).strict();

/** `POST /sandboxes/{id}/resume` (v1, older SDKs). */
export const ResumeSandbox = z.object({ timeout: TimeoutSeconds.optional(), autoPause: z.boolean().optional() }).strict();

/** `POST /sandboxes/{id}/timeout`. */
export const SetTimeout = z.object({ timeout: TimeoutSeconds }).strict();

/** `POST /sandboxes/{id}/refreshes` (older SDKs' keep-alive). */
export const Refresh = z.object({ duration: TimeoutSeconds.optional() }).strict();

/** `POST /sandboxes/{id}/pause`. */
export const PauseSandbox = z.object({ memory: z.boolean().optional() }).strict();

/** Query of `GET /v2/sandboxes`. */
export const ListQuery = z
  .object({
    metadata: z.string().max(16 * 1024).optional(),
    state: z.string().max(64).optional(),
    startedAfter: z.string().max(64).optional(),
    template: z.string().max(512).optional(),
    order: z.enum(["asc", "desc"]).optional(),
    limit: z.coerce.number().int().min(1).max(1000).optional(),
    nextToken: z.string().max(512).optional(),
  })
  .strict();

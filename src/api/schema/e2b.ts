/**
 * @module api/schema/e2b
 * `GET /v1/e2b/env` (socket only, like secret values): where aegisd serves
 * the E2B API and the key it wants, for `aegis e2b env`.
 */
import { z } from "zod";

/** The E2B SDK's settings for this aegisd. */
export const E2bEnv = z
  .object({
    /** E2B_API_URL: the REST API. */
    api_url: z.string(),
    /** E2B_SANDBOX_URL: envd of every sandbox (routed by the E2b-Sandbox-Id header). */
    sandbox_url: z.string(),
    /** E2B_DOMAIN: what `sandbox.getHost(port)` appends (`PORT-ID.localhost:ROUTER_PORT`). */
    domain: z.string(),
    /** E2B_API_KEY. */
    api_key: z.string(),
  })
  .strict();
export type E2bEnv = z.infer<typeof E2bEnv>;

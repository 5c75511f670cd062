/**
 * @module daemon/e2b/rest
 * E2B's REST API (the subset the SDK's Sandbox class calls), v1 and v2 paths:
 * create, connect, resume, kill, list (state and metadata filters,
 * `x-next-token` pagination), info, timeout, refresh, pause, metrics.
 * Every call needs the API key (`X-API-KEY`, or `Authorization: Bearer`);
 * without it nothing runs and the answer is 401. Errors are E2B's JSON,
 * `{"code": <HTTP status>, "message": "..."}`.
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { InvalidRequest, isAppError } from "../../api/errors.ts";
import { formatIssues } from "../../api/issues.ts";
import type { z } from "zod";
import type { Logger } from "../api/deps.ts";
import { sameSecret } from "./auth.ts";
import { ConnectSandbox, ListQuery, NewSandbox, PauseSandbox, Refresh, ResumeSandbox, SetTimeout } from "./rest-schema.ts";
import { e2bState, type E2bSandboxes } from "./sandboxes.ts";

/** An E2B error answer. */
export function e2bError(status: number, message: string): Response {
  return Response.json({ code: status, message }, { status });
}

class BadRequest extends Error {}

async function body<S extends z.ZodType>(c: Context, schema: S, optional: boolean): Promise<z.infer<S>> {
  const text = await c.req.text();
  let value: unknown = {};
  if (text.length > 0) {
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new BadRequest(`malformed JSON body: ${(err as Error).message}`);
    }
  } else if (!optional) throw new BadRequest("missing JSON body");
  const r = schema.safeParse(value);
  if (!r.success) throw new BadRequest(`invalid request body: ${formatIssues(r.error.issues)}`);
  return r.data;
}

/** `k=v&k2=v2` (each part URL-encoded, the whole again by the query string) as a map. */
export function parseMetadataFilter(raw: string | undefined): Record<string, string> {
  if (!raw) return {};
  const out: Record<string, string> = {};
  for (const [k, v] of new URLSearchParams(raw)) out[decodeURIComponent(k)] = decodeURIComponent(v);
  return out;
}

/** The REST app. */
export function createE2bRest(deps: { sandboxes: E2bSandboxes; apiKey: () => string; log: Logger }): Hono {
  const { sandboxes } = deps;
  const app = new Hono();
  app.use("*", async (c, next) => {
    const bearer = c.req.header("authorization")?.replace(/^Bearer\s+/i, "");
    if (!sameSecret(c.req.header("x-api-key") ?? bearer, deps.apiKey())) {
      return e2bError(401, "invalid or missing API key: send the key 'aegis e2b env' prints as X-API-KEY (E2B_API_KEY)");
    }
    await next();
  });
  app.onError((err) => {
    if (err instanceof BadRequest) return e2bError(400, err.message);
    if (isAppError(err)) return e2bError(err.status, err.hint ? `${err.message} (${err.hint})` : err.message);
    deps.log.error("e2b api failed", { error: String(err) });
    return e2bError(500, `internal error: ${(err as Error).message}`);
  });
  app.notFound((c) => e2bError(404, `no E2B API endpoint ${c.req.method} ${c.req.path} in Aegis`));

  const create = async (c: Context) => c.json(await sandboxes.create(await body(c, NewSandbox, false)), 201);
  app.post("/sandboxes", create);
  app.post("/v2/sandboxes", create);

  const list = (c: Context, v2: boolean) => {
    const q = ListQuery.safeParse(c.req.query());
    if (!q.success) throw new BadRequest(`invalid query: ${formatIssues(q.error.issues)}`);
    const states = v2 ? (q.data.state ?? "running,paused").split(",").filter(Boolean) : ["running"];
    for (const s of states) if (s !== "running" && s !== "paused") throw new BadRequest(`invalid state "${s}": use running or paused`);
    const meta = parseMetadataFilter(q.data.metadata);
    const after = q.data.startedAfter ? Date.parse(q.data.startedAfter) : null;
    let rows = sandboxes
      .rows()
      .filter((r) => states.includes(e2bState(r.state)))
      .filter((r) => Object.entries(meta).every(([k, v]) => r.spec.e2b.metadata[k] === v))
      .filter((r) => !q.data.template || r.spec.e2b.template === q.data.template)
      .filter((r) => after === null || Date.parse(r.spec.e2b.started_at) > after)
      .sort((a, b) => (a.created_at === b.created_at ? a.id.localeCompare(b.id) : a.created_at.localeCompare(b.created_at)));
    if (q.data.order === "desc") rows.reverse();
    if (!v2) return c.json(rows.map((r) => sandboxes.listed(r)));
    if (q.data.nextToken) {
      const last = Buffer.from(q.data.nextToken, "base64url").toString("utf8");
      const at = rows.findIndex((r) => r.id === last);
      if (at < 0) throw new BadRequest(`invalid nextToken "${q.data.nextToken}" (the sandbox it points at is gone): list again from the start`);
      rows = rows.slice(at + 1);
    }
    const limit = q.data.limit ?? 100;
    const page = rows.slice(0, limit);
    if (rows.length > limit) c.header("x-next-token", Buffer.from(page[page.length - 1]!.id).toString("base64url"));
    return c.json(page.map((r) => sandboxes.listed(r)));
  };
  app.get("/sandboxes", (c) => list(c, false));
  app.get("/v2/sandboxes", (c) => list(c, true));

  app.get("/sandboxes/:id", (c) => c.json(sandboxes.info(c.req.param("id"))));
  app.delete("/sandboxes/:id", async (c) => {
    await sandboxes.kill(c.req.param("id"));
    return c.body(null, 204);
  });
  const connect = async (c: Context) => {
    const b = await body(c, ConnectSandbox, true);
    const r = await sandboxes.connect(c.req.param("id")!, b.timeout);
    return c.json(r.body, r.resumed ? 201 : 200);
  };
  app.post("/sandboxes/:id/connect", connect);
  app.post("/v2/sandboxes/:id/connect", connect);
  app.post("/sandboxes/:id/resume", async (c) => {
    const b = await body(c, ResumeSandbox, true);
    const r = await sandboxes.connect(c.req.param("id"), b.timeout, { mustBePaused: true, ...(b.autoPause !== undefined ? { autoPause: b.autoPause } : {}) });
    return c.json(r.body, 201);
  });
  app.post("/sandboxes/:id/timeout", async (c) => {
    sandboxes.setTimeout(c.req.param("id"), (await body(c, SetTimeout, false)).timeout);
    return c.body(null, 204);
  });
  app.post("/sandboxes/:id/refreshes", async (c) => {
    const b = await body(c, Refresh, true);
    sandboxes.setTimeout(c.req.param("id"), b.duration ?? 60);
    return c.body(null, 204);
  });
  app.post("/sandboxes/:id/pause", async (c) => {
    await body(c, PauseSandbox, true);
    await sandboxes.pause(c.req.param("id"));
    return c.body(null, 204);
  });
  // A sandbox keeps the egress policy it was created with (network.ts): refused, after the 404 for unknown ids.
  app.put("/sandboxes/:id/network", (c) => {
    sandboxes.row(c.req.param("id"));
    throw new InvalidRequest("changing a running sandbox's network is not supported by Aegis's E2B API", "create a new sandbox with the allowOut/denyOut it needs");
  });
  app.get("/sandboxes/:id/metrics", async (c) => c.json(await sandboxes.metrics(c.req.param("id"))));
  return app;
}

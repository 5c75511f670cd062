/**
 * @module daemon/api/app
 * The composition root of the HTTP API: a pure factory over the daemon's
 * services. Errors of every kind are turned into the one JSON envelope here,
 * and only here (STYLE rule 12).
 */
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { AppError, isAppError } from "../../api/errors.ts";
import { appRoutes } from "./apps.ts";
import type { ApiDeps } from "./deps.ts";
import { imageRoutes } from "./images.ts";
import { fileRoutes } from "./files.ts";
import { instanceRoutes } from "./instances.ts";
import { kitRoutes } from "./kits.ts";
import { workspaceSecretRoutes } from "./secrets.ts";
import { taskRoutes } from "./tasks.ts";

/** Build the API app. */
export function createApp(deps: ApiDeps) {
  const app = new Hono()
    .get("/v1/status", (c) => c.json(deps.status()))
    .get("/v1/e2b/env", (c) => {
      if (!deps.e2bEnv) throw new AppError("precondition_failed", "the E2B API is not running in this aegisd");
      return c.json(deps.e2bEnv());
    })
    .route("/v1/secrets", workspaceSecretRoutes(deps))
    .route("/v1/apps", appRoutes(deps))
    .route("/v1/kits", kitRoutes(deps))
    .route("/v1/tasks", taskRoutes(deps))
    .route("/v1/images", imageRoutes(deps))
    .route("/v1/instances", instanceRoutes(deps))
    .route("/v1/instances", fileRoutes(deps));

  app.notFound((c) => {
    const err = new AppError("not_found", `no such endpoint: ${c.req.method} ${new URL(c.req.url).pathname}`);
    return c.json(err.toJSON(), 404);
  });
  app.onError((err, c) => {
    if (isAppError(err)) return c.json((err as AppError).toJSON(), (err as AppError).status as 400);
    if (err instanceof HTTPException) {
      const wrapped = new AppError(err.status >= 500 ? "internal" : "invalid_request", err.message || "bad request");
      return c.json(wrapped.toJSON(), err.status);
    }
    deps.log.error("unhandled error", { method: c.req.method, path: new URL(c.req.url).pathname, error: String(err), stack: (err as Error).stack });
    return c.json(new AppError("internal", `internal error: ${(err as Error).message}`).toJSON(), 500);
  });
  return app;
}

/** The API's type, for typed clients and tests. */
export type AppType = ReturnType<typeof createApp>;

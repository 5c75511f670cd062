/**
 * @module daemon/api/secrets
 * `/v1/secrets...` (workspace scope) and `/v1/apps/{app}/secrets...` (app scope).
 */
import { Hono } from "hono";
import { SecretName } from "../../api/schema/common.ts";
import { putEgress, SecretPut } from "../../api/schema/secrets.ts";
import type { ApiDeps } from "./deps.ts";
import { jsonBody, param } from "./validate.ts";

const workspace = { kind: "workspace" } as const;

/** Workspace secret routes, mounted at `/v1/secrets`. */
export function workspaceSecretRoutes(deps: ApiDeps) {
  return new Hono()
    .get("/", (c) => c.json({ scope: "workspace", secrets: deps.secrets.list(workspace) }))
    .put("/:key", async (c) => {
      const name = param(c, "key", SecretName);
      const body = await jsonBody(c, SecretPut);
      deps.secrets.set(workspace, name, body.value, putEgress(body));
      deps.log.info("workspace secret set", { name });
      return c.json({ ok: true as const });
    })
    .get("/:key", (c) => {
      const name = param(c, "key", SecretName);
      return c.json({ name, value: deps.secrets.value(workspace, name, "the workspace") });
    })
    .delete("/:key", (c) => {
      const name = param(c, "key", SecretName);
      deps.secrets.delete(workspace, name, "the workspace");
      deps.log.info("workspace secret deleted", { name });
      return c.json({ ok: true as const });
    });
}

/** App secret routes, mounted at `/v1/apps/:app/secrets`. */
export function appSecretRoutes(deps: ApiDeps) {
  return new Hono()
    .get("/", (c) => {
      const app = deps.apps.get(c.req.param("app") ?? "");
      return c.json({ scope: app.name, secrets: deps.secrets.list({ kind: "app", appId: app.id }) });
    })
    .put("/:key", async (c) => {
      const app = deps.apps.get(c.req.param("app") ?? "");
      const name = param(c, "key", SecretName);
      const body = await jsonBody(c, SecretPut);
      deps.secrets.set({ kind: "app", appId: app.id }, name, body.value, putEgress(body));
      deps.log.info("app secret set", { app: app.name, name });
      return c.json({ ok: true as const });
    })
    .delete("/:key", (c) => {
      const app = deps.apps.get(c.req.param("app") ?? "");
      const name = param(c, "key", SecretName);
      deps.secrets.delete({ kind: "app", appId: app.id }, name, `app ${app.name}`);
      deps.log.info("app secret deleted", { app: app.name, name });
      return c.json({ ok: true as const });
    });
}

/**
 * @module daemon/api/apps
 * `/v1/apps`: create, list, info, delete (by name or id).
 */
import { Hono } from "hono";
import { AppCreate, ReleaseCreate } from "../../api/schema/apps.ts";
import type { ApiDeps } from "./deps.ts";
import { appSecretRoutes } from "./secrets.ts";
import { jsonBody } from "./validate.ts";

/** App routes, mounted at `/v1/apps`. */
export function appRoutes(deps: ApiDeps) {
  return new Hono()
    .get("/", (c) => c.json({ apps: deps.apps.list() }))
    .post("/", async (c) => {
      const app = deps.apps.create(await jsonBody(c, AppCreate));
      deps.log.info("app created", { app: app.name, id: app.id });
      return c.json(app, 201);
    })
    .get("/:app", (c) => c.json(deps.apps.get(c.req.param("app"))))
    .delete("/:app", async (c) => {
      // The spec: deleting an app stops its running instances (first, so a failed stop deletes nothing).
      const stopped = await deps.instances.stopAppInstances(deps.apps.get(c.req.param("app")).id);
      const app = deps.apps.delete(c.req.param("app"));
      deps.log.info("app deleted", { app: app.name, id: app.id, stopped_instances: stopped });
      return c.json({ ok: true as const });
    })
    .get("/:app/releases", (c) => c.json({ releases: deps.apps.get(c.req.param("app")).releases }))
    .post("/:app/releases", async (c) => {
      const { label } = await jsonBody(c, ReleaseCreate);
      const release = await deps.apps.publish(c.req.param("app"), label);
      deps.log.info("release published", { app: c.req.param("app"), release: release.id, image_digest: release.image_digest });
      return c.json(release, 201);
    })
    .route("/:app/secrets", appSecretRoutes(deps));
}

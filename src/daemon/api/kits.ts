/**
 * @module daemon/api/kits
 * `/v1/kits`: install (manifest JSON), list, info, uninstall.
 */
import { Hono } from "hono";
import { ResourceName } from "../../api/schema/common.ts";
import { KitManifest } from "../../api/schema/kits.ts";
import type { ApiDeps } from "./deps.ts";
import { jsonBody, param } from "./validate.ts";

/** Kit routes, mounted at `/v1/kits`. */
export function kitRoutes(deps: ApiDeps) {
  return new Hono()
    .get("/", (c) => c.json({ kits: deps.kits.list() }))
    .post("/", async (c) => {
      const kit = deps.kits.install(await jsonBody(c, KitManifest));
      deps.log.info("kit installed", { kit: kit.manifest.name, version: kit.manifest.version });
      return c.json(kit, 201);
    })
    .get("/:name", (c) => c.json(deps.kits.get(param(c, "name", ResourceName))))
    .delete("/:name", (c) => {
      const name = param(c, "name", ResourceName);
      deps.kits.uninstall(name);
      deps.log.info("kit uninstalled", { kit: name });
      return c.json({ ok: true as const });
    });
}

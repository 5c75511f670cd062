/**
 * @module daemon/api/images
 * `/v1/images`: list, inspect, pull (NDJSON progress), remove, garbage-collect.
 * References contain `/` and `:`, so they travel percent-encoded in the path.
 */
import { Hono } from "hono";
import { isAppError } from "../../api/errors.ts";
import { type ImageRecord, ImagePull, type ImagePullEvent } from "../../api/schema/images.ts";
import { parseReference } from "../images/index.ts";
import { imageRunConfig } from "../images/process-spec.ts";
import type { ApiDeps } from "./deps.ts";
import { ndjsonResponse } from "./ndjson.ts";
import { jsonBody } from "./validate.ts";

/** Records pulled before the run config was kept show what applies (PATH and WorkingDir). */
function withRunConfig(image: ImageRecord): ImageRecord {
  return { ...image, config: imageRunConfig(image) };
}

/** Image routes, mounted at `/v1/images`. */
export function imageRoutes(deps: ApiDeps) {
  return new Hono()
    .get("/", (c) => c.json({ images: deps.images.list().map(withRunConfig) }))
    .post("/pull", async (c) => {
      const body = await jsonBody(c, ImagePull);
      parseReference(body.ref); // a bad reference is a 400 before the stream starts
      const credentials = body.credentials ?? deps.images.credentialsFor(body.ref);
      return ndjsonResponse(async (emit: (e: ImagePullEvent) => void) => {
        try {
          const image = await deps.images.pull(body.ref, { credentials, progress: (progress) => emit({ type: "progress", progress }) });
          deps.log.info("image pulled", { ref: image.ref, digest: image.digest });
          emit({ type: "done", image });
        } catch (err) {
          const e = isAppError(err) ? err : { code: "internal", message: (err as Error).message, hint: undefined };
          deps.log.warn("image pull failed", { ref: body.ref, error: e.message });
          emit({ type: "error", error: { code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}) } });
        }
      });
    })
    .post("/gc", (c) => c.json(deps.images.collectGarbage()))
    .get("/:ref", (c) => c.json(withRunConfig(deps.images.require(c.req.param("ref")))))
    .delete("/:ref", (c) => {
      const image = deps.images.require(c.req.param("ref"));
      deps.images.remove(image.ref);
      const gc = deps.images.collectGarbage();
      deps.log.info("image removed", { ref: image.ref, freed_bytes: gc.freedBytes });
      return c.json({ ok: true as const, ref: image.ref, gc });
    });
}

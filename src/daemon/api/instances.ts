/**
 * @module daemon/api/instances
 * `/v1/instances` (id or handle everywhere): create, list, info, delete,
 * start, pause, resume, stop, stats, exec (NDJSON), logs (NDJSON), tether ingress
 * and stream, and expose / unexpose of router-served guest ports.
 */
import { Hono } from "hono";
import { z } from "zod";
import { ExecRequest, ExposeRequest, InstanceCreate } from "../../api/schema/instances.ts";
import { TetherIngress, TetherStreamQuery } from "../../api/schema/tether.ts";
import { execInInstance } from "../instances/exec.ts";
import { exposePort, unexposePort } from "../instances/expose.ts";
import { instanceStats } from "../instances/stats.ts";
import type { ApiDeps } from "./deps.ts";
import { sessionRoutes } from "./sessions.ts";
import { ndjsonResponse } from "./ndjson.ts";
import { logStreamResponse, wantsFollow } from "./tasks.ts";
import { jsonBody, optionalJsonBody, parseWith } from "./validate.ts";

const StopBody = z.object({ snapshot: z.boolean().default(false) }).strict();
const LogsQuery = z.object({ follow: z.string().optional(), tail: z.coerce.number().int().min(0).optional() }).strict();

/** Instance routes, mounted at `/v1/instances`. */
export function instanceRoutes(deps: ApiDeps) {
  const { instances } = deps;
  return new Hono()
    .get("/", (c) => c.json({ instances: instances.list() }))
    .post("/", async (c) => c.json(await instances.create(await jsonBody(c, InstanceCreate)), 201))
    .get("/:id", (c) => c.json(instances.get(c.req.param("id"))))
    .delete("/:id", async (c) => {
      await instances.delete(c.req.param("id"));
      return c.json({ ok: true as const });
    })
    .post("/:id/start", async (c) => c.json(await instances.start(c.req.param("id"))))
    .post("/:id/resume", async (c) => c.json(await instances.start(c.req.param("id"))))
    .post("/:id/pause", async (c) => c.json(await instances.pause(c.req.param("id"))))
    .get("/:id/stats", async (c) => c.json(await instanceStats(instances, c.req.param("id"))))
    .post("/:id/stop", async (c) => {
      return c.json(await instances.stop(c.req.param("id"), await optionalJsonBody(c, StopBody)));
    })
    .post("/:id/exec", async (c) => {
      const ref = c.req.param("id");
      instances.row(ref); // 404 before the stream starts
      const req = await jsonBody(c, ExecRequest);
      return ndjsonResponse((emit) => execInInstance(instances, ref, req, emit));
    })
    .get("/:id/exec/session", sessionRoutes(deps).exec)
    .post("/:id/tether", async (c) => {
      const ref = c.req.param("id");
      instances.row(ref); // 404 before reading the body
      return c.json(deps.tether.ingress(ref, await jsonBody(c, TetherIngress)), 202);
    })
    .get("/:id/tether/stream", (c) => {
      const q = parseWith(TetherStreamQuery, c.req.query(), "query");
      const ref = c.req.param("id");
      instances.row(ref);
      // A snapshot read (`follow=false`): the stored frames, sent synchronously, then the end.
      if (q.follow === "false") return ndjsonResponse(async (emit) => deps.tether.subscribe(ref, q.after_seq, (f) => void emit(f))());
      // Following: held to the client's pace (tether/follow.ts), until it goes away.
      return ndjsonResponse((emit) => deps.tether.follow(ref, q.after_seq, emit, c.req.raw.signal));
    })
    .post("/:id/expose", async (c) => {
      const ref = c.req.param("id");
      instances.row(ref);
      return c.json(await exposePort(instances, ref, (await jsonBody(c, ExposeRequest)).port));
    })
    .delete("/:id/expose/:port", async (c) => {
      const port = parseWith(ExposeRequest.shape.port, Number(c.req.param("port")), "port");
      return c.json(await unexposePort(instances, c.req.param("id"), port));
    })
    .get("/:id/logs", (c) => {
      const q = parseWith(LogsQuery, c.req.query(), "query");
      const id = instances.row(c.req.param("id")).id;
      return logStreamResponse(deps, id, wantsFollow(q.follow), null, q.tail);
    });
}

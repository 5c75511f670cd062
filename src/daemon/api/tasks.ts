/**
 * @module daemon/api/tasks
 * `/v1/tasks`: create, inspect, cancel, and the NDJSON log stream.
 */
import { Hono } from "hono";
import { type LogLine, TaskCreate, TaskListQuery } from "../../api/schema/tasks.ts";
import type { ApiDeps } from "./deps.ts";
import { jsonBody, parseWith } from "./validate.ts";

const encoder = new TextEncoder();

/** An NDJSON response that replays a log and, when following, streams it live until the end record. */
export function logStreamResponse(deps: ApiDeps, id: string, follow: boolean, end: (() => LogLine) | null, tail?: number): Response {
  let unsubscribe: (() => void) | undefined;
  let done = false;
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      unsubscribe = deps.logs.subscribe(id, follow, (line) => {
        if (done) return;
        if (line) controller.enqueue(encoder.encode(`${JSON.stringify(line)}\n`));
        else {
          done = true;
          if (end) controller.enqueue(encoder.encode(`${JSON.stringify(end())}\n`));
          controller.close();
        }
      }, tail);
    },
    cancel() {
      done = true;
      unsubscribe?.();
    },
  });
  return new Response(stream, { headers: { "content-type": "application/x-ndjson", "cache-control": "no-store" } });
}

/** Whether a `follow` query value asks to follow. */
export function wantsFollow(value: string | undefined): boolean {
  return value === "1" || value === "true";
}

/** Task routes, mounted at `/v1/tasks`. */
export function taskRoutes(deps: ApiDeps) {
  return new Hono()
    .get("/", (c) => {
      const q = parseWith(TaskListQuery, c.req.query(), "query");
      return c.json({ tasks: deps.tasks.list(q.limit, q.state) });
    })
    .post("/", async (c) => c.json(await deps.tasks.create(await jsonBody(c, TaskCreate)), 201))
    .get("/:id", (c) => c.json(deps.tasks.get(c.req.param("id"))))
    .post("/:id/cancel", async (c) => c.json(await deps.tasks.cancel(c.req.param("id"))))
    .get("/:id/logs", (c) => {
      const id = deps.tasks.get(c.req.param("id")).id;
      return logStreamResponse(deps, id, wantsFollow(c.req.query("follow")), () => {
        const t = deps.tasks.get(id);
        return { type: "end", state: t.state, exit_code: t.exit_code, signal: t.signal, error: t.error };
      });
    });
}

/**
 * @module daemon/api/tasks
 * `/v1/tasks`: create, inspect, cancel, and the NDJSON log stream.
 */
import { Hono } from "hono";
import { type LogLine, TaskCreate, TaskListQuery, TaskLogsQuery } from "../../api/schema/tasks.ts";
import type { ApiDeps } from "./deps.ts";
import { sessionRoutes } from "./sessions.ts";
import { jsonBody, parseWith } from "./validate.ts";

const encoder = new TextEncoder();

/** Bytes of log lines read from disk at a time by a follower that is behind. */
const LOG_PAGE_BYTES = 512 * 1024;

/**
 * An NDJSON response that replays a log and, when following, streams it
 * live until the end record.
 *
 * Memory stays bounded whatever the client's pace: the stored lines are
 * read from disk a page at a time as the client drains the response, and a
 * live line is queued only while the queue is under its high-water mark.
 * Past it the follower drops back to catching up from disk by seq, so the
 * producer (the log store's append, paced by the disk) never waits for a
 * follower and a follower never misses a line that is still on disk.
 */
export function logStreamResponse(deps: ApiDeps, id: string, follow: boolean, end: (() => LogLine) | null, tail?: number, afterSeq?: number): Response {
  let lastSeq = afterSeq ?? deps.logs.tailStart(id, tail);
  let unlisten: (() => void) | null = null;
  let behind = true;
  let ended = !follow;
  let done = false;
  let finish = (): void => undefined;
  const line = (value: unknown): Uint8Array => encoder.encode(`${JSON.stringify(value)}\n`);
  const stream = new ReadableStream<Uint8Array>(
    {
      start(controller) {
        finish = (): void => {
          done = true;
          unlisten?.();
          if (end) controller.enqueue(line(end()));
          controller.close();
        };
        if (follow) {
          unlisten = deps.logs.listen(id, (l) => {
            if (done) return;
            if (l === null) {
              ended = true;
              if (!behind) finish();
              return;
            }
            if (behind) return; // on disk: pull() pages it in
            controller.enqueue(line(l));
            lastSeq = l.seq;
            if ((controller.desiredSize ?? 1) <= 0) behind = true;
          });
          if (unlisten === null) ended = true;
        }
      },
      pull(controller) {
        if (done || !behind) return;
        const page = deps.logs.linesAfter(id, lastSeq, LOG_PAGE_BYTES);
        for (const l of page) {
          controller.enqueue(line(l));
          lastSeq = l.seq;
        }
        if (page.length > 0) return; // pulled again while the client keeps up
        behind = false;
        if (ended) finish();
      },
      cancel() {
        done = true;
        unlisten?.();
      },
    },
    new ByteLengthQueuingStrategy({ highWaterMark: LOG_PAGE_BYTES }),
  );
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
    .get("/session", sessionRoutes(deps).task)
    .get("/:id", (c) => c.json(deps.tasks.get(c.req.param("id"))))
    .post("/:id/cancel", async (c) => c.json(await deps.tasks.cancel(c.req.param("id"))))
    .get("/:id/logs", (c) => {
      const id = deps.tasks.get(c.req.param("id")).id;
      const q = parseWith(TaskLogsQuery, c.req.query(), "query");
      return logStreamResponse(
        deps,
        id,
        wantsFollow(q.follow),
        () => {
          const t = deps.tasks.get(id);
          return { type: "end", state: t.state, exit_code: t.exit_code, signal: t.signal, error: t.error };
        },
        undefined,
        q.after_seq,
      );
    });
}

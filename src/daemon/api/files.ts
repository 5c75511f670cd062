/**
 * @module daemon/api/files
 * Files inside an instance (waking it first), mounted under `/v1/instances`:
 * - `GET  /:id/files/stat?path=P` -> FileStat (lstat; 404 when missing)
 * - `GET  /:id/files/list?path=P` -> `{entries, truncated}`
 * - `GET  /:id/files/content?path=P` -> the bytes (application/octet-stream)
 * - `PUT  /:id/files/content?path=P[&mode=644]` (raw body) -> `{path, size}`
 * - `GET  /:id/archive?path=P` -> a tar of P (`docker cp` model)
 * - `PUT  /:id/archive?path=DIR` (tar body) -> `{path, entries}`
 */
import { Hono } from "hono";
import { FilesQuery, FileWriteQuery } from "../../api/schema/files.ts";
import { archiveStream, extractInto, spool } from "../instances/archive.ts";
import { InstanceFiles } from "../instances/files.ts";
import type { ApiDeps } from "./deps.ts";
import { parseWith } from "./validate.ts";

/** Routes under `/v1/instances`. */
export function fileRoutes(deps: ApiDeps) {
  const files = new InstanceFiles(deps.instances);
  const path = (q: Record<string, string>) => parseWith(FilesQuery, q, "query").path;
  return new Hono()
    .get("/:id/files/stat", async (c) => c.json(await files.stat(c.req.param("id"), path(c.req.query()))))
    .post("/:id/files/readonly", async (c) => c.json(await files.readonly(c.req.param("id"), path(c.req.query()))))
    .get("/:id/files/list", async (c) => c.json(await files.list(c.req.param("id"), path(c.req.query()))))
    .get("/:id/files/content", async (c) => {
      const { size, stream } = await files.read(c.req.param("id"), path(c.req.query()));
      return new Response(stream, { headers: { "content-type": "application/octet-stream", "content-length": String(size) } });
    })
    .put("/:id/files/content", async (c) => {
      const q = parseWith(FileWriteQuery, c.req.query(), "query");
      const ref = c.req.param("id");
      deps.instances.row(ref); // 404 before reading the body
      return c.json(await files.write(ref, q.path, c.req.raw.body, q.mode === undefined ? undefined : parseInt(q.mode, 8)));
    })
    .get("/:id/archive", async (c) => {
      const ref = c.req.param("id");
      const st = await files.stat(ref, path(c.req.query()));
      return new Response(archiveStream((fn) => files.with(ref, fn), st), { headers: { "content-type": "application/x-tar" } });
    })
    .put("/:id/archive", async (c) => {
      const ref = c.req.param("id");
      const dest = path(c.req.query());
      const st = await files.stat(ref, dest);
      if (st.type !== "dir") return c.json({ error: { code: "invalid_request", message: `${dest} in ${ref} is not a directory`, hint: "extract into an existing directory" } }, 400);
      const spooled = await spool(c.req.raw.body ?? new ReadableStream());
      try {
        return c.json({ path: dest, entries: await extractInto((fn) => files.with(ref, fn), dest, spooled.path) });
      } finally {
        spooled.dispose();
      }
    });
}

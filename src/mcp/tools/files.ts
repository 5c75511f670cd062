/**
 * @module mcp/tools/files
 * Files inside an instance over the daemon's files API (which wakes a paused
 * or stopped instance first): `file_read`, `file_write`, `file_list`.
 * Content travels as UTF-8 text or base64. Limits: a read returns at most
 * {@link FILE_MAX_BYTES} (the file is stat'ed first, so a bigger one is
 * refused before any byte moves), a write takes at most the same, a listing
 * returns at most {@link LIST_MAX_ENTRIES} entries.
 */
import { z } from "zod";
import type { AegisClient } from "../../api/client.ts";
import { ok, ToolError } from "../result.ts";
import { defineTool } from "../tool.ts";
import { InstanceRef } from "./_fields.ts";

/** Largest file content a tool call moves (1 MiB). */
export const FILE_MAX_BYTES = 1024 * 1024;
/** Most directory entries `file_list` returns. */
export const LIST_MAX_ENTRIES = 1000;

const GuestPath = z.string().regex(/^\//, "must be an absolute path inside the VM (e.g. /etc/hostname)").describe("Absolute path inside the VM");
const Encoding = z.enum(["text", "base64"]).default("text").describe('"text" for UTF-8 content, "base64" for any bytes');
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });
const bigFileHint = "copy it to the host with 'aegis cp NAME:PATH DEST' (no size limit), or read it in parts with exec, e.g. [\"sh\", \"-c\", \"tail -c +1000001 FILE | head -c 1000000\"]";

/** The file's bytes, or null once more than {@link FILE_MAX_BYTES} arrive (the download is aborted there). */
async function readCapped(c: AegisClient, instance: string, path: string): Promise<Uint8Array | null> {
  const abort = new AbortController();
  const res = await c.raw("GET", `/v1/instances/${encodeURIComponent(instance)}/files/content?path=${encodeURIComponent(path)}`, undefined, abort.signal);
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of res.body ?? new ReadableStream<Uint8Array>()) {
    size += chunk.length;
    if (size > FILE_MAX_BYTES) {
      abort.abort();
      return null;
    }
    chunks.push(chunk);
  }
  return new Uint8Array(Buffer.concat(chunks));
}

const fileRead = defineTool({
  name: "file_read",
  title: "Read a file in an instance",
  description: `Read a file inside an instance (waking it when paused or stopped). encoding "text" (default) returns UTF-8 text and fails for other bytes; "base64" returns any bytes. Files larger than 1 MiB (${FILE_MAX_BYTES} bytes) are refused with the size: copy them with \`aegis cp\` or read them in parts with exec.`,
  input: z.object({ instance: InstanceRef, path: GuestPath, encoding: Encoding }).strict(),
  readOnly: true,
  async run({ instance, path, encoding }, { link }) {
    return link.call(async (c) => {
      const st = await c.statFile(instance, path);
      if (st.type === "dir") throw new ToolError(`${path} in instance "${instance}" is a directory`, "list it with file_list");
      if (st.type !== "file" && st.type !== "symlink") throw new ToolError(`${path} in instance "${instance}" is not a regular file (${st.type})`);
      if (st.size > FILE_MAX_BYTES) throw new ToolError(`${path} in instance "${instance}" is ${st.size} bytes; file_read returns at most ${FILE_MAX_BYTES} bytes (1 MiB)`, bigFileHint);
      // A symlink's stat is the link's; the read itself is bounded, so no target can fill memory.
      const bytes = await readCapped(c, instance, path);
      if (bytes === null) throw new ToolError(`${path} in instance "${instance}" is larger than ${FILE_MAX_BYTES} bytes; file_read returns at most 1 MiB`, bigFileHint);
      if (encoding === "base64") {
        const content = Buffer.from(bytes).toString("base64");
        return ok({ path, size: bytes.length, encoding, content });
      }
      let content: string;
      try {
        content = strictUtf8.decode(bytes);
      } catch (err) {
        if (!(err instanceof TypeError)) throw err;
        throw new ToolError(`${path} in instance "${instance}" is not valid UTF-8 text (${bytes.length} bytes)`, 'read it with encoding "base64"');
      }
      return ok({ path, size: bytes.length, encoding, content }, content);
    });
  },
});

const fileWrite = defineTool({
  name: "file_write",
  title: "Write a file in an instance",
  description: `Create or replace a file inside an instance (waking it when paused or stopped); missing parent directories are created. content is UTF-8 text (encoding "text", default) or base64 ("base64"), at most 1 MiB (${FILE_MAX_BYTES} bytes) once decoded. mode is octal permission digits such as "644" or "755". Returns the path and size written.`,
  input: z
    .object({
      instance: InstanceRef,
      path: GuestPath,
      content: z.string().describe("The file's content, as text or base64 per encoding"),
      encoding: Encoding,
      mode: z.string().regex(/^[0-7]{3,4}$/, 'must be octal permission digits such as "644" or "0755"').optional().describe('Permissions, octal digits ("644"); default 644 for new files'),
    })
    .strict(),
  async run({ instance, path, content, encoding, mode }, { link }) {
    if (encoding === "base64" && !/^[A-Za-z0-9+/]*={0,2}$/.test(content.replace(/\s+/g, ""))) {
      throw new ToolError("content is not valid base64", 'send the bytes base64-encoded (A-Z, a-z, 0-9, +, /, = padding) or use encoding "text"');
    }
    const bytes = encoding === "base64" ? Buffer.from(content, "base64") : Buffer.from(content, "utf8");
    if (bytes.length > FILE_MAX_BYTES) throw new ToolError(`content is ${bytes.length} bytes; file_write takes at most ${FILE_MAX_BYTES} bytes (1 MiB)`, "write the file in parts with exec (e.g. append with sh -c 'cat >> FILE'), or generate it inside the VM");
    return link.call(async (c) => ok(await c.writeFile(instance, path, new Uint8Array(bytes), mode === undefined ? undefined : Number.parseInt(mode, 8))));
  },
});

const fileList = defineTool({
  name: "file_list",
  title: "List a directory in an instance",
  description: `List a directory inside an instance (waking it when paused or stopped): each entry's path, name, type (file, dir, symlink, other), size, mode (permission bits), uid, gid, mtime_ms (ms since the epoch) and symlink target. At most ${LIST_MAX_ENTRIES} entries are returned; truncated is true when there were more.`,
  input: z.object({ instance: InstanceRef, path: GuestPath.default("/").describe("Absolute directory path inside the VM (default /)") }).strict(),
  readOnly: true,
  async run({ instance, path }, { link }) {
    return link.call(async (c) => {
      const { entries, truncated } = await c.listFiles(instance, path);
      return ok({ path, entries: entries.slice(0, LIST_MAX_ENTRIES), truncated: truncated || entries.length > LIST_MAX_ENTRIES });
    });
  },
});

/** The file tools, in `tools/list` order. */
export const fileTools = [fileRead, fileWrite, fileList];

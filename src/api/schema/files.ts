/**
 * @module api/schema/files
 * Files inside a guest: the `fs.*` control requests the harness serves (paths
 * as the guest's processes see them, inside the rootfs, symlinks resolved
 * there) and the views of aegisd's `/v1/instances/{id}/files/*` and
 * `/archive` endpoints (`aegis cp`, the host MCP file tools, E2B's envd).
 *
 * Reads and writes travel in chunks of at most FS_CHUNK_BYTES so one control
 * message stays small; the daemon streams larger files chunk by chunk.
 */
import { z } from "zod";

/** Largest raw chunk of one `fs.read` / `fs.write` (before base64). */
export const FS_CHUNK_BYTES = 256 * 1024;

/** Most entries one `fs.list` returns (a larger directory is reported `truncated`). */
export const FS_LIST_MAX = 10_000;

/** An absolute path inside the guest. */
export const GuestPath = z.string().regex(/^\//, "must be an absolute path inside the guest").max(4096, "is too long");

/** What a path is. */
export const FileType = z.enum(["file", "dir", "symlink", "other"]);

/** One file's metadata (lstat: a symlink is reported as a symlink). */
export const FileStat = z
  .object({
    path: z.string(),
    name: z.string(),
    type: FileType,
    size: z.number().int().nonnegative(),
    /** Permission bits and setuid/setgid/sticky (`mode & 0o7777`). */
    mode: z.number().int().nonnegative(),
    uid: z.number().int().nonnegative(),
    gid: z.number().int().nonnegative(),
    /** Modification time, ms since the epoch. */
    mtime_ms: z.number(),
    link_target: z.string().optional(),
  })
  .strict();
export type FileStat = z.infer<typeof FileStat>;

/** `fs.stat` params. */
export const FsStatParams = z.object({ path: GuestPath }).strict();

/** `fs.list` params and result. */
export const FsListParams = z.object({ path: GuestPath }).strict();
export const FsListResult = z.object({ entries: z.array(FileStat), truncated: z.boolean() }).strict();

/** `fs.read` params and result: `length` bytes from `offset` (fewer at the end). */
export const FsReadParams = z.object({ path: GuestPath, offset: z.number().int().nonnegative(), length: z.number().int().min(1).max(FS_CHUNK_BYTES) }).strict();
export const FsReadResult = z.object({ data: z.string(), eof: z.boolean() }).strict();

/** `fs.write` params: create (parents too) or truncate when `offset` is 0, then write `data` (base64) at `offset`. */
export const FsWriteParams = z
  .object({
    path: GuestPath,
    offset: z.number().int().nonnegative(),
    data: z.string().max(Math.ceil(FS_CHUNK_BYTES / 3) * 4 + 4),
    /** Permission bits of a file this call creates (default 0644). */
    mode: z.number().int().min(0).max(0o7777).optional(),
  })
  .strict();
export const FsWriteResult = z.object({ size: z.number().int().nonnegative() }).strict();

/** `fs.mkdir` params (parents are created; an existing directory is fine). */
export const FsMkdirParams = z.object({ path: GuestPath, mode: z.number().int().min(0).max(0o7777).optional() }).strict();

/** `fs.readonly` params: a path of the rootfs made read-only in the guest (a bind onto itself, remounted ro). */
export const FsReadonlyParams = z.object({ path: GuestPath }).strict();

/** `fs.remove` params (a directory needs `recursive`). */
export const FsRemoveParams = z.object({ path: GuestPath, recursive: z.boolean().optional() }).strict();

/** `fs.rename` params. */
export const FsRenameParams = z.object({ from: GuestPath, to: GuestPath }).strict();

/** `fs.symlink` params: create `path` pointing at `target` (kept as given). */
export const FsSymlinkParams = z.object({ path: GuestPath, target: z.string().min(1).max(4096) }).strict();

/** `fs.setattr` params: mode and/or mtime of `path` (the link itself for a symlink's mtime). */
export const FsSetattrParams = z
  .object({ path: GuestPath, mode: z.number().int().min(0).max(0o7777).optional(), mtime_ms: z.number().optional() })
  .strict();

/** `PUT /v1/instances/{id}/files/content` result. */
export const FileWritten = z.object({ path: z.string(), size: z.number().int().nonnegative() }).strict();

/** `PUT /v1/instances/{id}/archive` result. */
export const ArchiveWritten = z.object({ path: z.string(), entries: z.number().int().nonnegative() }).strict();

/** Query of the files endpoints. */
export const FilesQuery = z.object({ path: GuestPath }).strict();

/** Query of `PUT .../files/content`: `mode` in octal digits. */
export const FileWriteQuery = z.object({ path: GuestPath, mode: z.string().regex(/^[0-7]{3,4}$/, "must be octal permission bits such as 644").optional() }).strict();

/** Most directory watches one guest holds at once (`fs.watch`). */
export const FS_WATCH_MAX = 64;

/** Most events one watch reports per second; the rest of that second is dropped and counted. */
export const FS_WATCH_EVENTS_PER_S = 1000;

/** `fs.watch` params: watch `path` (a directory) under the host-chosen `id`, with its subdirectories when `recursive`. */
export const FsWatchParams = z.object({ id: z.string().min(1).max(128), path: GuestPath, recursive: z.boolean().optional() }).strict();

/** `fs.unwatch` params. */
export const FsUnwatchParams = z.object({ id: z.string().min(1).max(128) }).strict();

/** What happened to a watched path. */
export const FsEventType = z.enum(["create", "write", "remove", "rename", "chmod"]);

/**
 * `fs.event` notification (guest -> host): `name` is the path relative to the
 * watched directory. `dropped` counts events suppressed by the rate limit
 * since the previous notification of this watch.
 */
export const FsEventParams = z
  .object({ id: z.string().min(1).max(128), name: z.string().max(4096), type: FsEventType, dropped: z.number().int().nonnegative().optional() })
  .strict();

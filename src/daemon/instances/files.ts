/**
 * @module daemon/instances/files
 * Files inside an instance, for `aegis cp`, the host MCP file tools and
 * E2B's envd: stat, list, read and write as streams, and tar archives of a
 * path (Docker's `GET/PUT /containers/{id}/archive` model). Everything goes
 * through the guest's own `fs.*` requests (paths as the guest's processes
 * see them), so the instance is woken first (a paused one resumes, a stopped
 * one boots) and held awake while the transfer runs. Guest errors keep their
 * errno: ENOENT is a 404, EEXIST/ENOTEMPTY a 409, anything else a 400.
 */
import { posix } from "node:path";
import { BackendError, Conflict, InvalidRequest, NotFound } from "../../api/errors.ts";
import { RpcError } from "../../api/jsonrpc.ts";
import { RpcErrorCode } from "../../api/schema/control.ts";
import { FS_CHUNK_BYTES, type FileStat } from "../../api/schema/files.ts";
import type { ControlChannel } from "../../vmm/control-channel.ts";
import type { InstancesService } from "./service.ts";

/** Map a guest `fs.*` error to the daemon's error types. */
export function fsAppError(handle: string, err: unknown): Error {
  if (!(err instanceof RpcError) || err.code !== RpcErrorCode.fsError) return err instanceof Error ? err : new Error(String(err));
  const errno = (err.data as { errno?: string } | undefined)?.errno;
  const message = `instance ${handle}: ${err.message.replace(/^fs\.[a-z]+: /, "")}`;
  if (errno === "ENOENT") return new NotFound(message);
  if (errno === "EEXIST" || errno === "ENOTEMPTY") return new Conflict(message);
  if (errno === "EROFS" || errno === "ENOSPC" || errno === "EIO") return new BackendError(message);
  return new InvalidRequest(message);
}

/** Files of instances. */
export class InstanceFiles {
  constructor(private readonly instances: InstancesService) {}

  /** Run `fn` with the instance's channel, the instance awake and held so for the duration. */
  async with<T>(ref: string, fn: (ch: ControlChannel) => Promise<T>): Promise<T> {
    const row = this.instances.row(ref);
    const rt = await this.instances.ensureRunning(row.id);
    if (!rt.vm) throw new BackendError(`instance ${row.handle} has no running VM`);
    this.instances.activity.started(row.id);
    try {
      return await fn(rt.vm.channel);
    } catch (err) {
      throw fsAppError(row.handle, err);
    } finally {
      this.instances.activity.ended(row.id);
    }
  }

  /** lstat of one path. */
  stat(ref: string, path: string): Promise<FileStat> {
    return this.with(ref, (ch) => ch.call("fs.stat", { path }));
  }

  /** Make a rootfs path read-only in the guest (see guest/harness/files.ts readonly). */
  readonly(ref: string, path: string): Promise<{ ok: true }> {
    return this.with(ref, (ch) => ch.call("fs.readonly", { path }));
  }

  /** A directory's entries. */
  list(ref: string, path: string): Promise<{ entries: FileStat[]; truncated: boolean }> {
    return this.with(ref, (ch) => ch.call("fs.list", { path }));
  }

  /** A file's bytes as a stream (the size is checked first, so a missing file is an error before the stream starts). */
  async read(ref: string, path: string): Promise<{ size: number; stream: ReadableStream<Uint8Array> }> {
    const st = await this.stat(ref, path);
    if (st.type === "dir") throw new InvalidRequest(`instance ${ref}: ${path} is a directory`, "use aegis cp to copy a directory");
    let offset = 0;
    let done = false;
    const stream = new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        if (done) return controller.close();
        const chunk = await this.with(ref, (ch) => ch.call("fs.read", { path, offset, length: FS_CHUNK_BYTES }));
        const bytes = Buffer.from(chunk.data, "base64");
        offset += bytes.length;
        if (bytes.length > 0) controller.enqueue(bytes);
        if (chunk.eof) {
          done = true;
          controller.close();
        }
      },
    });
    return { size: st.size, stream };
  }

  /** Write a stream to a file (created with its parents, or truncated). */
  write(ref: string, path: string, body: AsyncIterable<Uint8Array> | null, mode?: number): Promise<{ path: string; size: number }> {
    return this.with(ref, async (ch) => {
      let offset = 0;
      const put = async (bytes: Uint8Array) => {
        const r = await ch.call("fs.write", { path, offset, data: Buffer.from(bytes).toString("base64"), mode });
        offset = r.size;
      };
      let pending = Buffer.alloc(0);
      if (body) {
        for await (const chunk of body) {
          pending = pending.length === 0 ? Buffer.from(chunk) : Buffer.concat([pending, chunk]);
          while (pending.length >= FS_CHUNK_BYTES) {
            await put(pending.subarray(0, FS_CHUNK_BYTES));
            pending = pending.subarray(FS_CHUNK_BYTES);
          }
        }
      }
      if (pending.length > 0 || offset === 0) await put(pending);
      return { path: posix.normalize(path), size: offset };
    });
  }
}

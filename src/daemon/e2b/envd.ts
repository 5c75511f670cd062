/**
 * @module daemon/e2b/envd
 * envd, the in-sandbox API the e2b SDK speaks, served by aegisd and
 * translated onto the sandbox's control channel (so it works with every
 * image, and a paused or stopped sandbox is woken first): the Connect
 * services `process.Process` and `filesystem.Filesystem`, and plain HTTP
 * `/health`, `/files` (download; upload as multipart or octet-stream, gzip
 * allowed) and `/envs`. Every call must carry the sandbox's access token
 * (`X-Access-Token`); the user, when the SDK names one, comes from
 * `Authorization: Basic base64(user:)`.
 *
 * Advertised envd version: {@link ENVD_VERSION} (0.6.1). The SDK gates
 * features on it; everything it gates up to 0.6.1 is served (recursive
 * watch 0.1.4, stdin control 0.3.0, default user 0.4.0, closeStdin 0.5.2,
 * octet-stream upload 0.5.7). 0.6.2 adds file metadata (`X-Metadata-*`
 * stored with the file), which Aegis does not keep, so the SDK's
 * `includeEntry` watch option (0.6.3) is served here but not offered.
 * `StreamInput` (client streaming, which needs HTTP/2) is answered
 * `unimplemented`; the SDK uses SendInput.
 */
import { posix } from "node:path";
import type { InstanceFiles } from "../instances/files.ts";
import type { InstancesService } from "../instances/service.ts";
import { sameSecret } from "./auth.ts";
import { ConnectError, END_STREAM, envelope, errorJson, parseMessage, serverStream, unary } from "./connect.ts";
import { writeInfo } from "./entry-info.ts";
import * as M from "./envd-schema.ts";
import type { SandboxFilesystem } from "./filesystem.ts";
import type { ProcessEvent, SandboxProcesses } from "./processes.ts";
import { ENVD_VERSION, e2bState, type E2bSandboxes } from "./sandboxes.ts";

/** Largest upload one `POST /files` takes (multipart bodies are parsed in memory). */
export const MAX_UPLOAD_BYTES = 512 * 1024 * 1024;

export { ENVD_VERSION };

/** What envd needs. */
export interface EnvdDeps {
  sandboxes: E2bSandboxes;
  instances: InstancesService;
  files: InstanceFiles;
  processes: SandboxProcesses;
  filesystem: SandboxFilesystem;
}

/** envd's plain-HTTP error JSON. */
function httpError(status: number, message: string): Response {
  return Response.json({ code: status, message }, { status });
}

function statusOf(err: unknown): number {
  const code = (err as { code?: string }).code;
  return code === "not_found" ? 404 : code === "conflict" ? 409 : code === "invalid_request" ? 400 : code === "backend_error" ? 502 : 500;
}

/** The user named by `Authorization: Basic base64(user:)`, if any. */
export function basicUser(header: string | null): string | undefined {
  const m = /^Basic\s+(.+)$/i.exec(header ?? "");
  if (!m) return undefined;
  const user = Buffer.from(m[1]!, "base64").toString("utf8").split(":")[0];
  return user || undefined;
}

function selector(sel: { pid?: number; tag?: string }): { pid?: number; tag?: string } {
  if (sel.pid === undefined && sel.tag === undefined) throw new ConnectError("invalid_argument", "process selector names neither a pid nor a tag");
  return sel;
}

/** Serve one envd request for `sandboxId` (from the E2b-Sandbox-Id header or the router's host). */
export async function handleEnvd(deps: EnvdDeps, sandboxId: string, req: Request): Promise<Response> {
  const url = new URL(req.url);
  let row;
  try {
    row = deps.sandboxes.row(sandboxId);
  } catch (err) {
    return httpError(404, (err as Error).message);
  }
  if (!sameSecret(req.headers.get("x-access-token"), deps.sandboxes.accessToken(row.id))) {
    const msg = `sandbox ${row.id}: invalid or missing access token (X-Access-Token)`;
    if (url.pathname.includes(".")) {
      const body = { code: "unauthenticated", message: msg };
      if ((req.headers.get("content-type") ?? "").startsWith("application/connect+json")) return new Response(envelope(END_STREAM, { error: body }), { headers: { "content-type": "application/connect+json" } });
      return Response.json(body, { status: 401 });
    }
    return httpError(401, msg);
  }
  const id = row.id;
  const user = basicUser(req.headers.get("authorization"));
  const path = url.pathname;
  if (path === "/health") return new Response(null, { status: e2bState(row.state) === "running" ? 204 : 502 });
  if (path === "/envs" && req.method === "GET") return Response.json(row.spec.env);
  if (path === "/files") return files(deps, id, req, url);
  if (path.startsWith("/process.Process/")) return processRpc(deps, id, path.slice("/process.Process/".length), req, user);
  if (path.startsWith("/filesystem.Filesystem/")) return filesystemRpc(deps, id, path.slice("/filesystem.Filesystem/".length), req);
  return httpError(404, `no envd endpoint ${req.method} ${path}`);
}

async function files(deps: EnvdDeps, id: string, req: Request, url: URL): Promise<Response> {
  try {
    const q = url.searchParams.get("path");
    if (req.method === "GET") {
      if (!q) return httpError(400, "missing path query parameter");
      const p = await deps.filesystem.resolve(id, q);
      const { size, stream } = await deps.files.read(id, p);
      return new Response(stream, { headers: { "content-type": "application/octet-stream", "content-length": String(size), "content-disposition": `attachment; filename="${posix.basename(p).replace(/["\\\r\n]/g, "_")}"` } });
    }
    if (req.method !== "POST") return httpError(405, `method ${req.method} not allowed on /files`);
    const declared = Number(req.headers.get("content-length") ?? "0");
    if (declared > MAX_UPLOAD_BYTES) return httpError(413, `upload of ${declared} bytes exceeds ${MAX_UPLOAD_BYTES}`);
    const type = req.headers.get("content-type") ?? "";
    const gzip = (req.headers.get("content-encoding") ?? "").toLowerCase() === "gzip";
    if (type.startsWith("multipart/form-data")) {
      const form = await req.formData();
      const parts = form.getAll("file").filter((f) => typeof f !== "string") as unknown as (Blob & { name: string })[];
      if (parts.length === 0) return httpError(400, 'multipart upload has no "file" part');
      if (q && parts.length > 1) return httpError(400, "a path query parameter names one file, but the upload has several; name each part's file instead");
      const out = [];
      for (const part of parts) {
        const target = q ?? part.name;
        if (!target) return httpError(400, "an uploaded part has no file name and no path query parameter was given");
        const p = await deps.filesystem.resolve(id, target);
        await deps.files.write(id, p, part.stream() as unknown as AsyncIterable<Uint8Array>);
        out.push(writeInfo(p));
      }
      return Response.json(out);
    }
    if (!q) return httpError(400, "missing path query parameter (an octet-stream upload names its file there)");
    const p = await deps.filesystem.resolve(id, q);
    let body = req.body;
    if (body && gzip) body = body.pipeThrough(new DecompressionStream("gzip"));
    await deps.files.write(id, p, body as unknown as AsyncIterable<Uint8Array> | null);
    return Response.json([writeInfo(p)]);
  } catch (err) {
    const status = statusOf(err);
    return httpError(status, (err as Error).message);
  }
}

function processRpc(deps: EnvdDeps, id: string, method: string, req: Request, user: string | undefined): Promise<Response> {
  const procs = deps.processes;
  const keepalive = { event: { keepalive: {} } };
  const follow = (sink: { send(m: unknown): void; signal: AbortSignal }, subscribe: (l: (ev: ProcessEvent | Error) => void) => Promise<() => void>) =>
    new Promise<void>((resolve, reject) => {
      let off: (() => void) | undefined;
      const listener = (ev: ProcessEvent | Error) => {
        if (ev instanceof Error) return reject(ev);
        sink.send({ event: ev });
        if ("end" in ev) resolve();
      };
      // The client going away stops the following, never the process (E2B's background commands).
      sink.signal.addEventListener("abort", () => {
        off?.();
        resolve();
      });
      subscribe(listener).then((o) => {
        off = o;
        if (sink.signal.aborted) o();
      }, reject);
    });
  switch (method) {
    case "Start":
      return serverStream(req, keepalive, async (msg, sink) => {
        const r = parseMessage(M.StartRequest, msg, "StartRequest");
        await follow(sink, async (l) => {
          const pid = await procs.start(
            id,
            {
              cmd: r.process.cmd,
              args: r.process.args ?? [],
              envs: r.process.envs ?? {},
              ...(r.process.cwd ? { cwd: await deps.filesystem.resolve(id, r.process.cwd) } : {}),
              ...(user ? { user } : {}),
              ...(r.tag !== undefined ? { tag: r.tag } : {}),
              stdin: r.stdin === true,
              ...(r.pty ? { pty: r.pty.size } : {}),
            },
            l,
          );
          return () => procs.unsubscribe(id, pid, l);
        });
      });
    case "Connect":
      return serverStream(req, keepalive, async (msg, sink) => {
        const r = parseMessage(M.ConnectRequest, msg, "ConnectRequest");
        await follow(sink, async (l) => procs.connect(id, selector(r.process), l));
      });
    case "List":
      return unary(req, async (msg) => {
        parseMessage(M.ListRequest, msg, "ListRequest");
        return { processes: procs.list(id) };
      });
    case "SendInput":
      return unary(req, async (msg) => {
        const r = parseMessage(M.SendInputRequest, msg, "SendInputRequest");
        const data = r.input?.stdin ?? r.input?.pty;
        if (data !== undefined) await procs.input(id, selector(r.process), Buffer.from(data, "base64"));
        return {};
      });
    case "SendSignal":
      return unary(req, async (msg) => {
        const r = parseMessage(M.SendSignalRequest, msg, "SendSignalRequest");
        const sig = r.signal === "SIGNAL_SIGTERM" || r.signal === 15 ? "SIGTERM" : r.signal === "SIGNAL_SIGKILL" || r.signal === 9 ? "SIGKILL" : null;
        if (!sig) throw new ConnectError("invalid_argument", "signal must be SIGNAL_SIGTERM or SIGNAL_SIGKILL");
        await procs.signal(id, selector(r.process), sig);
        return {};
      });
    case "Update":
      return unary(req, async (msg) => {
        const r = parseMessage(M.UpdateRequest, msg, "UpdateRequest");
        if (r.pty) await procs.resize(id, selector(r.process), r.pty.size.cols, r.pty.size.rows);
        return {};
      });
    case "CloseStdin":
      return unary(req, async (msg) => {
        const r = parseMessage(M.CloseStdinRequest, msg, "CloseStdinRequest");
        await procs.closeStdin(id, selector(r.process));
        return {};
      });
    case "StreamInput":
      return unary(req, async () => {
        throw new ConnectError("unimplemented", "StreamInput (client streaming) is not served over HTTP/1.1; use SendInput");
      });
    default:
      return unary(req, async () => {
        throw new ConnectError("unimplemented", `process.Process/${method} does not exist`);
      });
  }
}

function filesystemRpc(deps: EnvdDeps, id: string, method: string, req: Request): Promise<Response> {
  const fs = deps.filesystem;
  const call = <S extends Parameters<typeof parseMessage>[0]>(schema: S, name: string, fn: (r: ReturnType<typeof parseMessage<S>>) => Promise<unknown> | unknown) =>
    unary(req, async (msg) => await fn(parseMessage(schema, msg, name)));
  switch (method) {
    case "Stat":
      return call(M.PathRequest, "StatRequest", (r) => fs.stat(id, r.path));
    case "ListDir":
      return call(M.ListDirRequest, "ListDirRequest", (r) => fs.listDir(id, r.path, r.depth || 1));
    case "MakeDir":
      return call(M.PathRequest, "MakeDirRequest", (r) => fs.makeDir(id, r.path));
    case "Move":
      return call(M.MoveRequest, "MoveRequest", (r) => fs.move(id, r.source, r.destination));
    case "Remove":
      return call(M.PathRequest, "RemoveRequest", (r) => fs.remove(id, r.path));
    case "CreateWatcher":
      return call(M.WatchRequest, "CreateWatcherRequest", (r) => fs.createWatcher(id, r));
    case "GetWatcherEvents":
      return call(M.WatcherRequest, "GetWatcherEventsRequest", (r) => fs.getWatcherEvents(id, r.watcherId));
    case "RemoveWatcher":
      return call(M.WatcherRequest, "RemoveWatcherRequest", (r) => fs.removeWatcher(id, r.watcherId));
    case "WatchDir":
      return serverStream(req, { keepalive: {} }, async (msg, sink) => {
        const r = parseMessage(M.WatchRequest, msg, "WatchDirRequest");
        await new Promise<void>((resolve, reject) => {
          fs.watch(id, r, (ev) => sink.send({ filesystem: ev }), reject).then((stop) => {
            sink.send({ start: {} });
            // The client is gone: unwatch in the guest; if the VM went away too, there is nothing left to unwatch.
            const end = () => {
              stop().then(resolve, resolve);
            };
            if (sink.signal.aborted) end();
            else sink.signal.addEventListener("abort", end);
          }, reject);
        });
      });
    default:
      return unary(req, async () => {
        throw new ConnectError("unimplemented", `filesystem.Filesystem/${method} does not exist`);
      });
  }
}

export { errorJson };

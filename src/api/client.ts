/**
 * @module api/client
 * The typed client of the aegisd API over its Unix socket. Every response is
 * parsed with the same zod schema the daemon answers with, and every error
 * envelope becomes an {@link AppError}, so callers see one error type.
 */
import { z } from "zod";
import { AppError, ErrorEnvelope, fromEnvelope, isAppError } from "./errors.ts";
import { App, AppList, type AppCreate, Release } from "./schema/apps.ts";
import { ImageGcResult, ImageList, ImagePullEvent, ImageRecord, ImageRemoved } from "./schema/images.ts";
import { Ok } from "./schema/common.ts";
import { E2bEnv } from "./schema/e2b.ts";
import { ArchiveWritten, FileStat, FileWritten, FsListResult } from "./schema/files.ts";
import { Kit, KitList, type KitManifest } from "./schema/kits.ts";
import { SecretList, SecretValue } from "./schema/secrets.ts";
import { Status } from "./schema/status.ts";
import { ExecLine, ExecRequest, Instance, InstanceCreate, InstanceList } from "./schema/instances.ts";
import { LogLine, Task, TaskCreate } from "./schema/tasks.ts";
import { TetherAccepted, TetherEgressFrame, type TetherIngress } from "./schema/tether.ts";

/**
 * aegisd could not be reached, or went away mid-request: the one error the
 * socket's own failures become (never a raw `ECONNRESET` from fetch), with
 * what to do in `hint`. The subclasses say which case it is.
 */
export class DaemonUnavailable extends Error {
  override name = "DaemonUnavailable";
  constructor(
    readonly socket: string,
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

/** Raised when nothing listens on the socket (nothing reached the daemon: safe to retry anything). */
export class DaemonNotRunning extends DaemonUnavailable {
  override name = "DaemonNotRunning";
  constructor(socket: string) {
    super(socket, "aegisd is not running. Run 'aegis up' first.");
  }
}

/** Raised when aegisd closed the connection before its answer was complete (it stopped, crashed or is restarting). */
export class DaemonConnectionLost extends DaemonUnavailable {
  override name = "DaemonConnectionLost";
  constructor(socket: string) {
    super(
      socket,
      "aegisd closed the connection before it answered (it stopped, crashed or is restarting).",
      "check 'aegis status'; 'aegis up' starts it again (its log is AEGIS_HOME/data/aegisd.log). Running VMs and tasks survive a restart.",
    );
  }
}

/** Raised when the socket exists but this user may not connect to it. */
export class DaemonPermissionDenied extends DaemonUnavailable {
  override name = "DaemonPermissionDenied";
  constructor(socket: string) {
    super(
      socket,
      `cannot connect to aegisd at ${socket}: permission denied (the socket is private to the user that started aegisd).`,
      "run aegis as that user, or set AEGIS_HOME to a home of your own and run 'aegis up'",
    );
  }
}

/**
 * Map an error thrown by fetch over the unix socket (connecting, or reading
 * a response body) to a {@link DaemonUnavailable}; anything else is returned
 * unchanged.
 */
export function socketError(err: unknown, socket: string): unknown {
  if (err instanceof DaemonUnavailable) return err;
  const code = (err as { code?: string } | null)?.code;
  if (code === "ENOENT" || code === "ECONNREFUSED") return new DaemonNotRunning(socket);
  if (code === "EACCES" || code === "EPERM") return new DaemonPermissionDenied(socket);
  if (code === "ECONNRESET" || code === "EPIPE" || code === "ConnectionClosed" || code === "ConnectionRefused") return new DaemonConnectionLost(socket);
  return err;
}

type Method = "GET" | "POST" | "PUT" | "DELETE";

/** A raw request body: bytes or a stream. */
export type RequestBody = NonNullable<RequestInit["body"]>;

const enc = encodeURIComponent;

/** Client of one aegisd socket. */
export class AegisClient {
  constructor(readonly socket: string) {}

  /** Send a request with a JSON body (if any) and return the raw response (errors already mapped). */
  raw(method: Method, path: string, body?: unknown, signal?: AbortSignal): Promise<Response> {
    return body === undefined ? this.send(method, path, undefined, undefined, signal) : this.send(method, path, JSON.stringify(body), "application/json", signal);
  }

  /** Send a request with a raw body (bytes, a stream) and return the response (errors already mapped). */
  async send(method: Method, path: string, body: RequestBody | undefined, contentType: string | undefined, signal?: AbortSignal): Promise<Response> {
    let res: Response;
    try {
      res = await fetch(`http://aegis${path}`, {
        unix: this.socket,
        method,
        signal,
        headers: contentType === undefined ? undefined : { "content-type": contentType },
        body,
      });
    } catch (err) {
      throw socketError(err, this.socket);
    }
    if (!res.ok) {
      let text: string;
      try {
        text = await res.text();
      } catch (err) {
        throw socketError(err, this.socket);
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        throw new AppError("internal", `aegisd answered ${res.status} with a non-JSON body: ${text.slice(0, 200)}`);
      }
      const envelope = ErrorEnvelope.safeParse(parsed);
      if (!envelope.success) throw new AppError("internal", `aegisd answered ${res.status}: ${text.slice(0, 200)}`);
      throw fromEnvelope(envelope.data);
    }
    return res;
  }

  /** Send a request and parse the JSON response with `schema`. */
  async request<S extends z.ZodType>(schema: S, method: Method, path: string, body?: unknown): Promise<z.infer<S>> {
    const res = await this.raw(method, path, body);
    let json: unknown;
    try {
      json = await res.json();
    } catch (err) {
      throw socketError(err, this.socket);
    }
    return schema.parse(json);
  }

  status() {
    return this.request(Status, "GET", "/v1/status");
  }

  /** The E2B SDK's settings (the API key included: socket only). */
  e2bEnv() {
    return this.request(E2bEnv, "GET", "/v1/e2b/env");
  }

  /** lstat of a path inside an instance (woken first). */
  statFile(ref: string, path: string) {
    return this.request(FileStat, "GET", `/v1/instances/${enc(ref)}/files/stat?path=${enc(path)}`);
  }
  /** A directory's entries inside an instance. */
  listFiles(ref: string, path: string) {
    return this.request(FsListResult, "GET", `/v1/instances/${enc(ref)}/files/list?path=${enc(path)}`);
  }
  /** A file's bytes from inside an instance. */
  async readFile(ref: string, path: string): Promise<Uint8Array> {
    const res = await this.raw("GET", `/v1/instances/${enc(ref)}/files/content?path=${enc(path)}`);
    return new Uint8Array(await res.arrayBuffer());
  }
  /** Write a file inside an instance (parents created); `mode` as permission bits. */
  writeFile(ref: string, path: string, bytes: RequestBody, mode?: number) {
    const q = `path=${enc(path)}${mode === undefined ? "" : `&mode=${mode.toString(8).padStart(3, "0")}`}`;
    return this.send("PUT", `/v1/instances/${enc(ref)}/files/content?${q}`, bytes, "application/octet-stream").then(async (r) => FileWritten.parse(await r.json()));
  }
  /** A tar stream of a path inside an instance (`docker cp` model). */
  async getArchive(ref: string, path: string): Promise<ReadableStream<Uint8Array>> {
    const res = await this.raw("GET", `/v1/instances/${enc(ref)}/archive?path=${enc(path)}`);
    if (!res.body) throw new AppError("internal", "aegisd sent an archive without a body");
    return res.body;
  }
  /** Extract a tar stream into a directory inside an instance. */
  async putArchive(ref: string, dir: string, tar: RequestBody) {
    const res = await this.send("PUT", `/v1/instances/${enc(ref)}/archive?path=${enc(dir)}`, tar, "application/x-tar");
    return ArchiveWritten.parse(await res.json());
  }

  /** Workspace secrets when `app` is undefined, else that app's. */
  listSecrets(app?: string) {
    return this.request(SecretList, "GET", app ? `/v1/apps/${enc(app)}/secrets` : "/v1/secrets");
  }
  /** Set a secret; `binding` keeps it out of the guest for `hosts`, or injects it `raw` (default: auto, api/egress-secrets.ts). */
  setSecret(key: string, value: string, app?: string, binding: { hosts?: string[]; raw?: true } = {}) {
    return this.request(Ok, "PUT", `${app ? `/v1/apps/${enc(app)}` : "/v1"}/secrets/${enc(key)}`, { value, ...binding });
  }
  deleteSecret(key: string, app?: string) {
    return this.request(Ok, "DELETE", `${app ? `/v1/apps/${enc(app)}` : "/v1"}/secrets/${enc(key)}`);
  }
  secretValue(key: string) {
    return this.request(SecretValue, "GET", `/v1/secrets/${enc(key)}`);
  }

  createApp(input: AppCreate) {
    return this.request(App, "POST", "/v1/apps", input);
  }
  listApps() {
    return this.request(AppList, "GET", "/v1/apps");
  }
  getApp(ref: string) {
    return this.request(App, "GET", `/v1/apps/${enc(ref)}`);
  }
  deleteApp(ref: string) {
    return this.request(Ok, "DELETE", `/v1/apps/${enc(ref)}`);
  }

  createTask(input: z.input<typeof TaskCreate>) {
    return this.request(Task, "POST", "/v1/tasks", input);
  }
  getTask(id: string) {
    return this.request(Task, "GET", `/v1/tasks/${enc(id)}`);
  }
  cancelTask(id: string) {
    return this.request(Task, "POST", `/v1/tasks/${enc(id)}/cancel`);
  }
  /**
   * The task's log lines (replay, then live when `follow`), ending with the
   * `end` record; with `afterSeq`, only the lines after that seq (a reader
   * resuming where it stopped).
   */
  taskLogs(id: string, follow: boolean, signal?: AbortSignal, afterSeq?: number): AsyncGenerator<LogLine> {
    const q = new URLSearchParams();
    if (follow) q.set("follow", "true");
    if (afterSeq !== undefined) q.set("after_seq", String(afterSeq));
    return this.ndjson(LogLine, `/v1/tasks/${enc(id)}/logs${q.size > 0 ? `?${q}` : ""}`, signal);
  }

  /** Stream an NDJSON endpoint, parsing each line with `schema`. */
  async *ndjson<S extends z.ZodType>(schema: S, path: string, signal?: AbortSignal, method: Method = "GET", body?: unknown): AsyncGenerator<z.infer<S>> {
    const res = await this.raw(method, path, body, signal);
    if (!res.body) return;
    const decoder = new TextDecoder();
    let buffered = "";
    const reader = res.body.getReader();
    let finished = false;
    try {
      for (;;) {
        let next: Awaited<ReturnType<typeof reader.read>>;
        try {
          next = await reader.read();
        } catch (err) {
          // The daemon went away mid-stream: one clear error, not fetch's raw ECONNRESET.
          throw socketError(err, this.socket);
        }
        if (next.done) {
          finished = true;
          break;
        }
        buffered += decoder.decode(next.value, { stream: true });
        let nl = buffered.indexOf("\n");
        while (nl >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          if (line.length > 0) yield schema.parse(JSON.parse(line));
          nl = buffered.indexOf("\n");
        }
      }
    } finally {
      // A consumer that stops early (or a parse error) abandons the response: close it, as `for await` would.
      // Its failure is moot (the connection is going away either way), so it is not reported.
      if (!finished) void reader.cancel().catch(() => undefined);
    }
    if (buffered.trim().length > 0) yield schema.parse(JSON.parse(buffered));
  }

  /** Pull an image, yielding progress events and ending with `done` or `error`. */
  pullImage(ref: string): AsyncGenerator<ImagePullEvent> {
    return this.ndjson(ImagePullEvent, "/v1/images/pull", undefined, "POST", { ref });
  }
  /** A pulled image, or null when it is not in the local store. */
  async findImage(ref: string): Promise<ImageRecord | null> {
    try {
      return await this.request(ImageRecord, "GET", `/v1/images/${enc(ref)}`);
    } catch (err) {
      if (isAppError(err) && err.code === "not_found") return null;
      throw err;
    }
  }
  listImages() {
    return this.request(ImageList, "GET", "/v1/images");
  }
  removeImage(ref: string) {
    return this.request(ImageRemoved, "DELETE", `/v1/images/${enc(ref)}`);
  }
  gcImages() {
    return this.request(ImageGcResult, "POST", "/v1/images/gc");
  }
  publishRelease(app: string, label?: string) {
    return this.request(Release, "POST", `/v1/apps/${enc(app)}/releases`, label === undefined ? {} : { label });
  }

  createInstance(input: z.input<typeof InstanceCreate>) {
    return this.request(Instance, "POST", "/v1/instances", input);
  }
  listInstances() {
    return this.request(InstanceList, "GET", "/v1/instances");
  }
  getInstance(ref: string) {
    return this.request(Instance, "GET", `/v1/instances/${enc(ref)}`);
  }
  deleteInstance(ref: string) {
    return this.request(Ok, "DELETE", `/v1/instances/${enc(ref)}`);
  }
  /** `start`, `resume`, `pause` or `stop` an instance. */
  instanceAction(ref: string, action: "start" | "resume" | "pause" | "stop", body?: unknown) {
    return this.request(Instance, "POST", `/v1/instances/${enc(ref)}/${action}`, body);
  }
  /** Run a command in an instance: output lines, then `exit` (or `error`). */
  exec(ref: string, body: z.input<typeof ExecRequest>): AsyncGenerator<ExecLine> {
    return this.ndjson(ExecLine, `/v1/instances/${enc(ref)}/exec`, undefined, "POST", body);
  }
  /** An instance's log lines (replay, then live when `follow`). */
  instanceLogs(ref: string, follow: boolean, tail?: number, signal?: AbortSignal): AsyncGenerator<LogLine> {
    const q = new URLSearchParams();
    if (follow) q.set("follow", "true");
    if (tail !== undefined) q.set("tail", String(tail));
    return this.ndjson(LogLine, `/v1/instances/${enc(ref)}/logs${q.size > 0 ? `?${q}` : ""}`, signal);
  }

  /** Serve guest `port` through the router (idempotent); the updated instance. */
  exposePort(ref: string, port: number) {
    return this.request(Instance, "POST", `/v1/instances/${enc(ref)}/expose`, { port });
  }
  /** Stop serving guest `port`; the updated instance. */
  unexposePort(ref: string, port: number) {
    return this.request(Instance, "DELETE", `/v1/instances/${enc(ref)}/expose/${port}`);
  }

  /** Send a host -> guest tether frame (wakes the instance); its `msg_id` and `seq`. */
  tetherSend(ref: string, frame: TetherIngress) {
    return this.request(TetherAccepted, "POST", `/v1/instances/${enc(ref)}/tether`, frame);
  }
  /**
   * Guest -> host tether frames after `afterSeq` (the recent ones when
   * undefined), then live ones; with `follow: false` only the stored ones.
   */
  tetherFrames(ref: string, afterSeq: number | undefined, follow: boolean, signal?: AbortSignal): AsyncGenerator<TetherEgressFrame> {
    const q = new URLSearchParams();
    if (afterSeq !== undefined) q.set("after_seq", String(afterSeq));
    if (!follow) q.set("follow", "false");
    return this.ndjson(TetherEgressFrame, `/v1/instances/${enc(ref)}/tether/stream${q.size > 0 ? `?${q}` : ""}`, signal);
  }

  installKit(manifest: KitManifest | unknown) {
    return this.request(Kit, "POST", "/v1/kits", manifest);
  }
  listKits() {
    return this.request(KitList, "GET", "/v1/kits");
  }
  getKit(name: string) {
    return this.request(Kit, "GET", `/v1/kits/${enc(name)}`);
  }
  uninstallKit(name: string) {
    return this.request(Ok, "DELETE", `/v1/kits/${enc(name)}`);
  }
}

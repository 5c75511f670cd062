/**
 * @module daemon/e2b/envd-schema
 * Our schemas of envd's request messages in the protobuf JSON mapping the
 * Connect JSON codec uses (lowerCamelCase names, enums by name or number,
 * bytes as base64, 64-bit integers as strings, defaults omitted). They were
 * written from the behaviour of the pinned e2b SDK (its requests on the
 * wire), covering the two services the SDK calls: `process.Process` and
 * `filesystem.Filesystem`. Responses are built by the handlers in the same
 * mapping (see entry-info.ts).
 */
import { z } from "zod";

const Str = z.string().max(64 * 1024);
const Path = z.string().min(1, "must not be empty").max(4096, "is too long");

/** `ProcessSelector`: a pid or a tag (oneof). */
export const ProcessSelector = z.object({ pid: z.number().int().nonnegative().optional(), tag: Str.optional() }).strict();

/** `ProcessConfig`. */
export const ProcessConfig = z
  .object({
    cmd: z.string().min(1, "must name a program").max(4096),
    args: z.array(z.string().max(1024 * 1024)).max(4096).optional(),
    envs: z.record(z.string().max(1024), z.string().max(1024 * 1024)).optional(),
    cwd: z.string().max(4096).optional(),
  })
  .strict();

/** `PTY`. */
export const Pty = z
  .object({ size: z.object({ cols: z.number().int().min(1).max(1000), rows: z.number().int().min(1).max(1000) }).strict() })
  .strict();

/** `StartRequest`. */
export const StartRequest = z.object({ process: ProcessConfig, pty: Pty.optional(), tag: Str.optional(), stdin: z.boolean().optional() }).strict();
/** `ConnectRequest`. */
export const ConnectRequest = z.object({ process: ProcessSelector }).strict();
/** `ListRequest`. */
export const ListRequest = z.object({}).strict();
/** `ProcessInput`: stdin or pty bytes (oneof), base64. */
export const ProcessInput = z.object({ stdin: z.base64().optional(), pty: z.base64().optional() }).strict();
/** `SendInputRequest`. */
export const SendInputRequest = z.object({ process: ProcessSelector, input: ProcessInput.optional() }).strict();
/** `SendSignalRequest`: SIGTERM or SIGKILL, by name or number. */
export const SendSignalRequest = z
  .object({ process: ProcessSelector, signal: z.union([z.enum(["SIGNAL_UNSPECIFIED", "SIGNAL_SIGTERM", "SIGNAL_SIGKILL"]), z.literal(0), z.literal(9), z.literal(15)]).optional() })
  .strict();
/** `UpdateRequest` (a PTY resize). */
export const UpdateRequest = z.object({ process: ProcessSelector, pty: Pty.optional() }).strict();
/** `CloseStdinRequest`. */
export const CloseStdinRequest = z.object({ process: ProcessSelector }).strict();

/** `StatRequest`, `MakeDirRequest`, `RemoveRequest`. */
export const PathRequest = z.object({ path: Path }).strict();
/** `MoveRequest`. */
export const MoveRequest = z.object({ source: Path, destination: Path }).strict();
/** `ListDirRequest`: depth 1 (the default) lists the directory itself. */
export const ListDirRequest = z.object({ path: Path, depth: z.number().int().min(0).max(64).optional() }).strict();
/** `WatchDirRequest` and `CreateWatcherRequest`. */
export const WatchRequest = z
  .object({ path: Path, recursive: z.boolean().optional(), includeEntry: z.boolean().optional(), allowNetworkMounts: z.boolean().optional() })
  .strict();
/** `GetWatcherEventsRequest` and `RemoveWatcherRequest`. */
export const WatcherRequest = z.object({ watcherId: z.string().min(1).max(128) }).strict();

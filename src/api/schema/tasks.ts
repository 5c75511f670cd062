/**
 * @module api/schema/tasks
 * Tasks: one command in a fresh VM (`aegis run` without `--expose`), and the
 * NDJSON log stream of `GET /v1/tasks/{id}/logs`.
 */
import { z } from "zod";
import { NetworkPolicySchema, SecretName } from "./common.ts";

/** Environment variable names a caller may set. */
export const EnvName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "must be an environment variable name");

/** An absolute path inside the guest (`--workdir`). */
export const GuestDir = z.string().regex(/^\//, "must be an absolute path inside the guest (e.g. /srv/app)");

/** `--user`: `name`, `uid`, `name:group` or `uid:gid`, resolved in the image's /etc/passwd and /etc/group. */
export const GuestUser = z.string().regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?$/, "must be NAME, UID, NAME:GROUP or UID:GID");

/**
 * How to run the process, over the image's config (Docker's rules, see
 * daemon/images/process-spec.ts): `command` replaces Cmd, `entrypoint`
 * replaces Entrypoint and drops Cmd (`[]` clears it).
 */
export const ProcessFields = {
  command: z.array(z.string()).min(1, "must name a program (put it after --)").optional(),
  entrypoint: z.array(z.string()).optional(),
  workdir: GuestDir.optional(),
  user: GuestUser.optional(),
};

/** Body of `POST /v1/tasks`. Without `command`, the image's Entrypoint + Cmd run. */
export const TaskCreate = z
  .object({
    ...ProcessFields,
    image: z.string().min(1).optional(),
    /** Secret names to inject as env vars, or ["*"] for every secret. */
    secrets: z.array(z.union([SecretName, z.literal("*")])).default([]),
    env: z.record(EnvName, z.string()).default({}),
    memory_mb: z.number().int().min(128, "must be at least 128").max(65536).default(512),
    vcpus: z.number().int().min(1).max(64).default(1),
    /** Egress policy (`--allow`, `--deny`, `--no-network`); the default (public internet only) when absent. */
    network: NetworkPolicySchema.optional(),
  })
  .strict();
export type TaskCreate = z.infer<typeof TaskCreate>;

/** Task states: `booting -> running -> succeeded | failed | cancelled`. */
export const TaskState = z.enum(["booting", "running", "succeeded", "failed", "cancelled"]);
export type TaskState = z.infer<typeof TaskState>;

/** Query of `GET /v1/tasks`. */
export const TaskListQuery = z
  .object({
    state: TaskState.optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(50),
  })
  .strict();

/**
 * Query of `GET /v1/tasks/{id}/logs`: `follow` (`true`/`1`) streams live
 * lines until the end record; `after_seq` starts after that seq, so a
 * reader whose connection broke (an aegisd restart) resumes exactly where
 * it stopped: no line twice, none skipped while it is still stored.
 */
export const TaskLogsQuery = z
  .object({
    follow: z.enum(["true", "false", "1", "0"]).optional(),
    after_seq: z
      .string()
      .regex(/^\d{1,15}$/, "must be a whole number (the seq of the last line you have)")
      .transform(Number)
      .optional(),
  })
  .strict();

/** A task as reported by the API. */
export const Task = z.object({
  id: z.string(),
  state: TaskState,
  command: z.array(z.string()),
  image: z.string().nullable(),
  exit_code: z.number().int().nullable(),
  signal: z.string().nullable(),
  error: z.string().nullable(),
  created_at: z.string(),
  started_at: z.string().nullable(),
  finished_at: z.string().nullable(),
});
export type Task = z.infer<typeof Task>;

/**
 * One line of a log stream. Output chunks carry `text` when the bytes are
 * valid UTF-8 and `data` (base64) otherwise, so binary output survives and
 * text stays readable with curl. `system` lines are Aegis's own notes (boot
 * failures, the console tail of a crashed VM). The last line of a followed
 * stream is an `end` record.
 */
export const LogLine = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("output"),
    seq: z.number().int(),
    ts: z.string(),
    stream: z.enum(["stdout", "stderr", "system"]),
    text: z.string().optional(),
    data: z.string().optional(),
  }),
  z.object({
    type: z.literal("end"),
    state: TaskState,
    exit_code: z.number().int().nullable(),
    signal: z.string().nullable(),
    error: z.string().nullable(),
  }),
]);
export type LogLine = z.infer<typeof LogLine>;

/**
 * @module api/schema/session
 * Interactive sessions: one bidirectional stream type for `aegis run -it`,
 * `aegis exec -it`, and later E2B PTYs, the shim's terminals and the UI.
 * It is a WebSocket on aegisd's socket:
 * - `GET /v1/instances/{id}/exec/session` runs a command in an instance;
 * - `GET /v1/tasks/session` runs a task (a fresh VM), like `POST /v1/tasks`.
 * The client's first message is `start` (the request, plus `tty` for a
 * terminal of that size and `stdin` to stream input); then it sends
 * `stdin`, `stdin_close`, `resize` and `signal` messages. The server sends
 * `task` (tasks only, with the task id), `output` chunks (a terminal has
 * one stream, `stdout`), then `exit` with the code, or `error`. Every
 * message is one JSON text frame; bytes travel base64 in `data`. Closing the
 * socket before `exit` kills the command (a task is cancelled).
 */
import { z } from "zod";
import { ExecRequest } from "./instances.ts";
import { TaskCreate } from "./tasks.ts";

/** A terminal size. */
export const TtySize = z.object({ cols: z.number().int().min(1).max(1000), rows: z.number().int().min(1).max(1000) }).strict();
export type TtySize = z.infer<typeof TtySize>;

const interactive = { tty: TtySize.optional(), stdin: z.boolean().default(false) };

/** First message of an exec session. */
export const ExecSessionStart = ExecRequest.extend({ type: z.literal("start"), ...interactive }).strict();
export type ExecSessionStart = z.infer<typeof ExecSessionStart>;

/** First message of a task session. */
export const TaskSessionStart = TaskCreate.extend({ type: z.literal("start"), ...interactive }).strict();
export type TaskSessionStart = z.infer<typeof TaskSessionStart>;

/** Messages after `start`, client -> server. */
export const SessionInput = z.discriminatedUnion("type", [
  z.object({ type: z.literal("stdin"), data: z.string() }).strict(),
  z.object({ type: z.literal("stdin_close") }).strict(),
  z.object({ type: z.literal("resize"), cols: z.number().int().min(1).max(1000), rows: z.number().int().min(1).max(1000) }).strict(),
  z.object({ type: z.literal("signal"), signal: z.string().regex(/^SIG[A-Z0-9]+$/, "must be a signal name such as SIGINT") }).strict(),
]);
export type SessionInput = z.infer<typeof SessionInput>;

/** Messages server -> client. */
export const SessionOutput = z.discriminatedUnion("type", [
  z.object({ type: z.literal("task"), id: z.string() }).strict(),
  z.object({ type: z.literal("output"), stream: z.enum(["stdout", "stderr"]), data: z.string() }).strict(),
  z.object({ type: z.literal("exit"), code: z.number().int(), signal: z.string().nullable() }).strict(),
  z.object({ type: z.literal("error"), error: z.object({ code: z.string(), message: z.string(), hint: z.string().optional() }) }).strict(),
]);
export type SessionOutput = z.infer<typeof SessionOutput>;

/**
 * @module daemon/api/sessions
 * The WebSocket endpoints of interactive sessions (protocol in
 * api/schema/session.ts): `GET /v1/instances/{id}/exec/session` and
 * `GET /v1/tasks/session`. The first message must be a valid `start`; any
 * other first message, or an invalid later one, ends the session with an
 * `error`. Closing the socket before `exit` kills the command.
 */
import type { Context } from "hono";
import { upgradeWebSocket } from "hono/bun";
import type { WSContext } from "hono/ws";
import type { z } from "zod";
import { isAppError } from "../../api/errors.ts";
import { ExecSessionStart, SessionInput, type SessionOutput, TaskSessionStart } from "../../api/schema/session.ts";
import { runExecSession } from "../instances/session.ts";
import type { ApiDeps } from "./deps.ts";

/** What a running session does with the client's messages. */
export interface SessionDriver {
  input(msg: SessionInput): void;
  /** The client went away before the command ended. */
  abort(): void;
}

/** Sends to the client; a closed socket drops the message. */
export type SessionSend = (msg: SessionOutput) => void;

function errorMessage(err: unknown): SessionOutput {
  const e = isAppError(err) ? err : { code: "backend_error", message: err instanceof Error ? err.message : String(err), hint: undefined };
  return { type: "error", error: { code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}) } };
}

/** A WebSocket handler that parses `start` with `schema`, then drives the session `begin` returns. */
function session<S extends z.ZodType>(schema: S, begin: (c: Context, start: z.output<S>, send: SessionSend) => Promise<SessionDriver>) {
  return upgradeWebSocket((c) => {
    let driver: SessionDriver | null = null;
    let starting = false;
    let ended = false;
    const queued: SessionInput[] = [];
    let socket: WSContext | null = null;
    const send: SessionSend = (msg) => {
      if (ended || !socket) return;
      socket.send(JSON.stringify(msg));
      if (msg.type === "exit" || msg.type === "error") {
        ended = true;
        socket.close(1000, msg.type);
      }
    };
    return {
      onOpen: (_evt, ws) => {
        socket = ws;
      },
      onMessage: (evt, ws) => {
        socket = ws;
        let json: unknown;
        try {
          json = JSON.parse(String(evt.data));
        } catch {
          return send(errorMessage(new Error("session messages are JSON text frames")));
        }
        if (!starting) {
          starting = true;
          const start = schema.safeParse(json);
          if (!start.success) return send({ type: "error", error: { code: "invalid_request", message: `invalid start message: ${start.error.issues.map((i) => `${i.path.join(".") || "message"}: ${i.message}`).join("; ")}` } });
          begin(c, start.data, send).then(
            (d) => {
              driver = d;
              if (ended) d.abort();
              for (const m of queued.splice(0)) d.input(m);
            },
            (err: unknown) => send(errorMessage(err)),
          );
          return;
        }
        const msg = SessionInput.safeParse(json);
        if (!msg.success) return send({ type: "error", error: { code: "invalid_request", message: `invalid session message: ${msg.error.issues[0]?.message ?? "unknown"}` } });
        if (driver) driver.input(msg.data);
        else queued.push(msg.data);
      },
      onClose: () => {
        if (!ended) {
          ended = true;
          driver?.abort();
        }
      },
    };
  });
}

/** Session routes: the instance one under `/v1/instances`, the task one under `/v1/tasks`. */
export function sessionRoutes(deps: ApiDeps) {
  return {
    exec: session(ExecSessionStart, (c, start, send) => runExecSession(deps.instances, c.req.param("id") ?? "", start, send)),
    task: session(TaskSessionStart, (_c, start, send) => deps.tasks.session(start, send)),
  };
}

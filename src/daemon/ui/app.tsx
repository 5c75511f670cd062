/**
 * @module daemon/ui/app
 * The web UI as a pure Hono factory over the daemon's services (STYLE rule
 * 9): server-rendered pages (hono/jsx), the event streams (./sse.ts), the
 * instance actions, and the embedded script and stylesheet. Everything sits
 * behind the guard (./guard.ts). Actions answer JSON: `{ ok: true }` or the
 * API's error envelope, so the page shows the daemon's own message.
 */
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { z } from "zod";
import { AppError, isAppError } from "../../api/errors.ts";
import type { Status } from "../../api/schema/status.ts";
import type { Check } from "../../doctor/checks.ts";
import type { Logger } from "../api/deps.ts";
import { jsonBody } from "../api/validate.ts";
import type { AppsService } from "../apps/service.ts";
import type { EventBus } from "../events.ts";
import type { ImagesService } from "../images/service.ts";
import { exposePort, unexposePort } from "../instances/expose.ts";
import type { InstancesService } from "../instances/service.ts";
import type { KitsService } from "../kits/service.ts";
import type { LogStore } from "../logs/log-store.ts";
import type { SecretsService } from "../secrets/service.ts";
import type { TasksService } from "../tasks/service.ts";
import type { TetherService } from "../tether/service.ts";
import script from "./assets/ui.js" with { type: "text" };
import style from "./assets/ui.css" with { type: "text" };
import { chatEvents, sendChat } from "./chat.ts";
import { uiGuard } from "./guard.ts";
import { type InstanceContext, InstancePage, InstanceRow, InstancesPage, InstanceSummary } from "./pages/instances.tsx";
import { AppsPage, ImagesPage, KitsPage, SecretsPage, StatusPage, TasksPage } from "./pages/tables.tsx";
import { execRun, pullRun } from "./runs.ts";
import { logEvents, instanceEvents } from "./sse.ts";
import { csrfFor } from "./token.ts";

/** What the UI needs from the daemon. */
export interface UiDeps {
  /** The per-AEGIS_HOME token (./token.ts). */
  token: string;
  /** The port the UI listens on (for the Host check). */
  port: () => number;
  events: EventBus;
  instances: InstancesService;
  logs: LogStore;
  tasks: TasksService;
  images: ImagesService;
  apps: AppsService;
  kits: KitsService;
  secrets: SecretsService;
  tether: TetherService;
  status: () => Status;
  /** Wakes per instance since aegisd started (./wakes.ts). */
  wakes: { of(id: string): number };
  /** The host checks of `aegis doctor` (doctor/checks.ts), shown on the status page. */
  doctor: () => Check[];
  log: Logger;
}

const PortBody = z.object({ port: z.number().int().min(1, "ports must be 1-65535").max(65535, "ports must be 1-65535") }).strict();

/** Build the UI app. */
export function createUiApp(deps: UiDeps) {
  const csrf = csrfFor(deps.token);
  const { instances } = deps;
  const ctx = (): InstanceContext => {
    const list = instances.list();
    const byId = new Map(list.map((i) => [i.id, i]));
    return {
      routerOrigin: deps.status().router_url,
      handleOf: (id) => byId.get(id)?.handle,
      childrenOf: (id) => list.filter((i) => i.parent_id === id).map((i) => i.id),
      wakesOf: (id) => deps.wakes.of(id),
    };
  };
  /** What `/events` sends for one instance: its rendered row and summary, or that it is gone. */
  const render = (id: string) => {
    const row = instances.find(id);
    if (row === null) return { id, deleted: true };
    const i = instances.view(row);
    const c = ctx();
    return { id, state: i.state, row: String(<InstanceRow i={i} ctx={c} />), summary: String(<InstanceSummary i={i} ctx={c} />) };
  };

  const app = new Hono()
    .use(uiGuard(deps.token, deps.port))
    .get("/", (c) => c.redirect("/instances", 303))
    .get("/assets/ui.js", (c) => c.body(script, 200, { "content-type": "text/javascript; charset=utf-8" }))
    .get("/assets/ui.css", (c) => c.body(style, 200, { "content-type": "text/css; charset=utf-8" }))
    .get("/events", (c) => instanceEvents(c, deps.events, render))
    .get("/instances", (c) => c.html(<InstancesPage list={instances.list()} ctx={ctx()} csrf={csrf} />))
    .get("/instances/:id", (c) => c.html(<InstancePage i={instances.get(c.req.param("id"))} ctx={ctx()} csrf={csrf} />))
    .get("/instances/:id/logs", (c) => logEvents(c, deps.logs, instances.row(c.req.param("id")).id))
    .post("/instances/:id/chat", async (c) => c.json({ ok: true, ...(await sendChat(c, deps.tether, instances.row(c.req.param("id")).id)) }, 202))
    .get("/instances/:id/chat/stream", (c) => chatEvents(c, deps.tether, instances.row(c.req.param("id")).id))
    .post("/instances/:id/exec", (c) => execRun(c, instances, c.req.param("id")))
    .post("/images/pull", (c) => pullRun(c, deps.images, deps.log))
    .post("/instances/:id/start", async (c) => c.json({ ok: true, instance: await instances.start(c.req.param("id")) }))
    .post("/instances/:id/resume", async (c) => c.json({ ok: true, instance: await instances.start(c.req.param("id")) }))
    .post("/instances/:id/pause", async (c) => c.json({ ok: true, instance: await instances.pause(c.req.param("id")) }))
    .post("/instances/:id/stop", async (c) => c.json({ ok: true, instance: await instances.stop(c.req.param("id")) }))
    .post("/instances/:id/delete", async (c) => {
      await instances.delete(c.req.param("id"));
      return c.json({ ok: true });
    })
    .post("/instances/:id/expose", async (c) => c.json({ ok: true, instance: await exposePort(instances, c.req.param("id"), (await jsonBody(c, PortBody)).port) }))
    .post("/instances/:id/unexpose", async (c) => c.json({ ok: true, instance: await unexposePort(instances, c.req.param("id"), (await jsonBody(c, PortBody)).port) }))
    .get("/tasks", (c) => c.html(<TasksPage tasks={deps.tasks.list(200)} csrf={csrf} />))
    .get("/images", (c) => c.html(<ImagesPage images={deps.images.list()} csrf={csrf} />))
    .get("/apps", (c) => c.html(<AppsPage apps={deps.apps.list()} csrf={csrf} />))
    .get("/kits", (c) => c.html(<KitsPage kits={deps.kits.list()} csrf={csrf} />))
    .get("/secrets", (c) => {
      const scopes = [{ label: "workspace", secrets: deps.secrets.list({ kind: "workspace" }) }];
      for (const a of deps.apps.list()) scopes.push({ label: `app ${a.name}`, secrets: deps.secrets.list({ kind: "app", appId: a.id }) });
      return c.html(<SecretsPage scopes={scopes} csrf={csrf} />);
    })
    .get("/status", (c) => c.html(<StatusPage status={deps.status()} checks={deps.doctor()} csrf={csrf} />));

  app.notFound((c) => c.json(new AppError("not_found", `no such page: ${c.req.method} ${new URL(c.req.url).pathname}`).toJSON(), 404));
  app.onError((err, c) => {
    if (isAppError(err)) return c.json((err as AppError).toJSON(), (err as AppError).status as 400);
    if (err instanceof HTTPException) return c.json(new AppError("invalid_request", err.message || "bad request").toJSON(), err.status);
    deps.log.error("ui: unhandled error", { method: c.req.method, path: new URL(c.req.url).pathname, error: String(err), stack: (err as Error).stack });
    return c.json(new AppError("internal", `internal error: ${(err as Error).message}`).toJSON(), 500);
  });
  return app;
}

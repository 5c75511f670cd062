/**
 * The web UI app (daemon/ui) in process over real services on a temporary
 * AEGIS_HOME, with helpers that speak as a browser with or without the
 * session cookie. Nothing is mocked.
 */
import { join } from "node:path";
import { DEFAULT_NETWORK } from "../../src/api/network-policy.ts";
import { DEFAULT_CAPABILITIES } from "../../src/api/schema/capabilities.ts";
import { InstancesTable, type InstanceRow } from "../../src/daemon/registry/instances.ts";
import { createUiApp } from "../../src/daemon/ui/app.tsx";
import { WakeCounter } from "../../src/daemon/ui/wakes.ts";
import { csrfFor, loadOrCreateUiToken } from "../../src/daemon/ui/token.ts";
import { testApi } from "./api-app.ts";

/** The port the in-process UI pretends to listen on (the Host check uses it). */
export const UI_PORT = 18098;

/** A stored instance row with defaults (no VM behind it). */
export function instanceRow(id: string, handle: string, over: Partial<InstanceRow> = {}): InstanceRow {
  return {
    id,
    handle,
    state: "stopped",
    spec: {
      image: "docker.io/library/alpine:3.21",
      kit: null,
      app_id: null,
      release_id: null,
      command: ["sleep", "1000"],
      workdir: null,
      user: null,
      secrets: [],
      env: {},
      expose: [],
      workspace: null,
      memory_mb: 256,
      vcpus: 1,
      pause_after_s: 0,
      stop_after_s: 0,
      parent_id: null,
      depth: 0,
      capabilities: DEFAULT_CAPABILITIES,
      network: DEFAULT_NETWORK,
    },
    exit_code: null,
    error: null,
    vmm_pid: null,
    created_at: new Date().toISOString(),
    started_at: null,
    last_active_at: null,
    ...over,
  };
}

/** A UI app over a test API's services. */
export function testUi() {
  const api = testApi();
  const token = loadOrCreateUiToken(join(api.paths.data, "ui.token"));
  const wakes = new WakeCounter(api.services.events, (id) => api.services.instances.find(id) ?? null, []);
  const app = createUiApp({ ...api.services, wakes, log: { info() {}, warn() {}, error() {} }, status: api.status, doctor: () => [{ name: "QEMU", ok: true, detail: "found at /usr/bin/qemu-system-x86_64" }], token, port: () => UI_PORT });
  const table = new InstancesTable(api.services.db, api.services.events);
  const origin = `http://127.0.0.1:${UI_PORT}`;
  /** A request as the browser with the session cookie (and the CSRF header on writes unless `csrf: false`). */
  const browse = (path: string, init: RequestInit & { csrf?: boolean; host?: string } = {}) => {
    const headers = new Headers(init.headers);
    if (!headers.has("host")) headers.set("host", init.host ?? `127.0.0.1:${UI_PORT}`);
    if (!headers.has("cookie")) headers.set("cookie", `aegis_ui_${UI_PORT}=${token}`);
    if (init.method && init.method !== "GET" && init.csrf !== false && !headers.has("x-aegis-csrf")) headers.set("x-aegis-csrf", csrfFor(token));
    return app.request(`${origin}${path}`, { ...init, headers });
  };
  return {
    api,
    app,
    token,
    table,
    origin,
    browse,
    [Symbol.dispose]() {
      api[Symbol.dispose]();
    },
  };
}

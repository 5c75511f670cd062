/**
 * In-process API app over real services on a temporary AEGIS_HOME (no socket),
 * for route-level tests. Nothing is mocked: the same services aegisd builds.
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createApp } from "../../src/daemon/api/app.ts";
import type { Logger } from "../../src/daemon/api/deps.ts";
import { createServices } from "../../src/daemon/services.ts";
import { statePaths } from "../../src/paths.ts";
import type { Status } from "../../src/api/schema/status.ts";

/** A test API with its services and a way to clean up. */
export function testApi() {
  const home = mkdtempSync(join(tmpdir(), "aegis-api-"));
  const paths = statePaths(home);
  mkdirSync(paths.data, { recursive: true });
  const lines: string[] = [];
  const log: Logger = {
    info: (m, f) => lines.push(JSON.stringify({ m, ...f })),
    warn: (m, f) => lines.push(JSON.stringify({ m, ...f })),
    error: (m, f) => lines.push(JSON.stringify({ m, ...f })),
  };
  // No VM backend: route tests exercise validation and the registry only.
  const services = createServices(paths, log, { backend: null, reason: "disabled in route tests" });
  const status = () =>
    ({
      status: "running",
      version: "test",
      pid: process.pid,
      home,
      backend: "qemu",
      backend_reason: "test",
      accel: "tcg",
      capabilities: { pause_resume: true, memory_snapshots: true, boot_from_disk_layers: true },
      kits_installed: services.kits.list().length,
      router_url: "http://127.0.0.1:8099",
      daemons: [],
    }) satisfies Status;
  const app = createApp({ ...services, log, status });
  const call = async (method: string, path: string, body?: unknown | string) => {
    const res = await app.request(path, {
      method,
      headers: { "content-type": "application/json" },
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text.length > 0 ? (JSON.parse(text) as any) : null };
  };
  return {
    app,
    status,
    home,
    paths,
    services,
    logLines: lines,
    call,
    [Symbol.dispose]() {
      services.db.close();
      rmSync(home, { recursive: true, force: true });
    },
  };
}

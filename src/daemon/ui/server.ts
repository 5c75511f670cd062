/**
 * @module daemon/ui/server
 * The web UI's listener: its own `Bun.serve` on 127.0.0.1 only (never the
 * API's socket, never another interface), started on demand by `aegis ui`
 * through `POST /v1/ui` and stopped with the daemon. The port is
 * `--port`, else AEGIS_UI_PORT, else 8097 (8098 is the E2B API's); a port already in use is a clear
 * error, never a silent move to another one (the URL would change under
 * the user's bookmarks).
 */
import { join } from "node:path";
import { Conflict, InvalidRequest } from "../../api/errors.ts";
import { createUiApp, type UiDeps } from "./app.tsx";
import { loadOrCreateUiToken } from "./token.ts";
import { WakeCounter } from "./wakes.ts";

/** The default UI port. */
export const DEFAULT_UI_PORT = 8097;

/** The port from AEGIS_UI_PORT, else the default. */
export function uiPortFromEnv(env = process.env): number {
  const raw = env.AEGIS_UI_PORT;
  if (raw === undefined || raw === "") return DEFAULT_UI_PORT;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new InvalidRequest(`AEGIS_UI_PORT=${raw} is not a port number (1-65535)`);
  return port;
}

/** A running (or not yet started) UI. */
export class UiServer {
  private server: ReturnType<typeof Bun.serve> | null = null;
  private readonly token: string;
  private readonly wakes: WakeCounter;

  /** Made at daemon start (before `aegis ui` asks), so wake counts cover the daemon's whole run. */
  constructor(
    dataDir: string,
    private readonly deps: Omit<UiDeps, "token" | "port" | "wakes">,
  ) {
    this.token = loadOrCreateUiToken(join(dataDir, "ui.token"));
    this.wakes = new WakeCounter(deps.events, (id) => deps.instances.find(id) ?? null, deps.instances.list());
  }

  /** The port it listens on, or null when not started. */
  get port(): number | null {
    return this.server?.port ?? null;
  }

  /**
   * Listen on `port` (idempotent for the same port) and return the URL that
   * opens a session. A different port while running is a Conflict: one UI
   * per daemon keeps one token cookie and one origin.
   */
  start(port: number): { url: string; port: number } {
    if (this.server) {
      if (port !== this.server.port) throw new Conflict(`the UI already listens on port ${this.server.port}`, `run 'aegis ui --port ${this.server.port}', or restart aegisd to move it`);
      return this.urlFor(this.server.port!);
    }
    const app = createUiApp({ ...this.deps, wakes: this.wakes, token: this.token, port: () => this.server?.port ?? port });
    try {
      // idleTimeout 0: the event streams stay open; they send heartbeats themselves.
      this.server = Bun.serve({ hostname: "127.0.0.1", port, fetch: app.fetch, idleTimeout: 0 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EADDRINUSE") {
        throw new Conflict(`port ${port} on 127.0.0.1 is already in use, so the UI cannot listen there`, "pass --port P (or set AEGIS_UI_PORT) to use another port");
      }
      throw err;
    }
    return this.urlFor(this.server.port!);
  }

  private urlFor(port: number): { url: string; port: number } {
    return { url: `http://127.0.0.1:${port}/?token=${this.token}`, port };
  }

  /** Stop listening (open event streams are cut). */
  async stop(): Promise<void> {
    await this.server?.stop(true);
    this.server = null;
  }
}

/**
 * @module daemon/e2b/front
 * The E2B front of aegisd: one HTTP/1.1 listener on loopback
 * (`127.0.0.1:AEGIS_E2B_PORT`; 0 picks a free port; without the variable
 * 8098, or a free port when 8098 is taken, so a second aegisd (another
 * AEGIS_HOME, a test) still starts; `aegis e2b env` prints whichever) serving
 * both E2B's REST API and envd. A request carrying `E2b-Sandbox-Id` (what the
 * SDK sends to E2B_SANDBOX_URL) is an envd call for that sandbox; every other
 * request is REST. The router (port 8099) also hands envd calls here, for
 * `E2b-Sandbox-Port: 49983` headers and `49983-ID.localhost` hosts, and
 * routes every other port of a sandbox to the guest (router/resolve.ts).
 *
 * The lifetime ticker (sandboxes.ts) runs here, once a second.
 *
 * Network policy: E2B's `allowInternetAccess` and `network.allowOut/denyOut`
 * become the sandbox's Aegis egress policy at create (network.ts); what
 * cannot be honoured (header transforms, a SOCKS5 proxy, ...) is refused
 * there, naming the field.
 */
import { join } from "node:path";
import type { E2bEnv } from "../../api/schema/e2b.ts";
import type { StatePaths } from "../../paths.ts";
import type { Logger } from "../api/deps.ts";
import { InstanceFiles } from "../instances/files.ts";
import type { Services } from "../services.ts";
import { loadOrCreateApiKey } from "./auth.ts";
import { handleEnvd, MAX_UPLOAD_BYTES } from "./envd.ts";
import { SandboxFilesystem } from "./filesystem.ts";
import { SandboxProcesses } from "./processes.ts";
import { createE2bRest, e2bError } from "./rest.ts";
import { E2bSandboxes } from "./sandboxes.ts";

/** envd's port in E2B sandboxes. */
export const ENVD_PORT = 49983;

/** The default port of the E2B front. */
export const DEFAULT_E2B_PORT = 8098;

/** Where the E2B front listens: AEGIS_E2B_PORT, or null for the default (8098, else any free port). */
export function e2bPort(env = process.env): number | null {
  if (env.AEGIS_E2B_PORT === undefined || env.AEGIS_E2B_PORT === "") return null;
  const port = Number(env.AEGIS_E2B_PORT);
  if (!/^\d+$/.test(env.AEGIS_E2B_PORT) || port > 65535) throw new Error(`AEGIS_E2B_PORT=${env.AEGIS_E2B_PORT} is not a port number`);
  return port;
}

/** The E2B REST API and envd. */
export class E2bFront {
  readonly sandboxes: E2bSandboxes;
  private readonly envdDeps;
  private readonly apiKey: string;
  private server: ReturnType<typeof Bun.serve> | null = null;
  private ticker: ReturnType<typeof setInterval> | null = null;
  private readonly rest;

  constructor(
    services: Services,
    paths: StatePaths,
    private readonly log: Logger,
    private readonly routerOrigin: () => string,
  ) {
    this.apiKey = loadOrCreateApiKey(services.cipher, join(paths.data, "e2b-api-key.sealed"));
    this.sandboxes = new E2bSandboxes({ instances: services.instances, apps: services.apps, cipher: services.cipher, log });
    const files = new InstanceFiles(services.instances);
    const processes = new SandboxProcesses(services.instances);
    const filesystem = new SandboxFilesystem(services.instances, files);
    this.sandboxes.onCreated.push((id) => processes.prime(id));
    services.instances.onDeleted.push((id) => {
      processes.forget(id);
      filesystem.forget(id);
    });
    this.envdDeps = { sandboxes: this.sandboxes, instances: services.instances, files, processes, filesystem };
    this.rest = createE2bRest({ sandboxes: this.sandboxes, apiKey: () => this.apiKey, log });
  }

  /** Serve an envd request for a sandbox (the router's entry point). */
  envd(sandboxId: string, req: Request): Promise<Response> {
    return handleEnvd(this.envdDeps, sandboxId, req);
  }

  /** Whether `ref` names a sandbox (for the router). */
  isSandbox(ref: string): boolean {
    return this.sandboxes.rowOrNull(ref) !== null;
  }

  /** Listen and start the lifetime ticker. */
  async start(wanted = e2bPort()): Promise<void> {
    try {
      this.server = this.listen(wanted ?? DEFAULT_E2B_PORT);
    } catch (err) {
      if (wanted !== null) throw new Error(`cannot listen on 127.0.0.1:${wanted} for the E2B API: ${(err as Error).message} (set AEGIS_E2B_PORT to use another port)`);
      this.log.warn("e2b: the default port is taken; listening on a free port ('aegis e2b env' prints it)", { port: DEFAULT_E2B_PORT, error: String(err) });
      this.server = this.listen(0);
    }
    let ticking = false;
    this.ticker = setInterval(() => {
      if (ticking) return;
      ticking = true;
      void this.sandboxes.tick().finally(() => {
        ticking = false;
      });
    }, 1000);
  }

  private listen(port: number): ReturnType<typeof Bun.serve> {
    return Bun.serve({
        hostname: "127.0.0.1",
        port,
        idleTimeout: 0,
        maxRequestBodySize: MAX_UPLOAD_BYTES,
        development: false,
        fetch: async (req) => {
          const sandbox = req.headers.get("e2b-sandbox-id");
          if (sandbox !== null) return this.envd(sandbox, req);
          return this.rest.fetch(req);
        },
        error: (err) => {
          this.log.error("e2b front failed", { error: String(err) });
          return e2bError(500, `internal error: ${err.message}`);
        },
      });
  }

  /** `http://127.0.0.1:PORT`. */
  get origin(): string {
    return `http://127.0.0.1:${this.server?.port ?? 0}`;
  }

  /** What `aegis e2b env` prints. */
  env(): E2bEnv {
    const router = new URL(this.routerOrigin());
    return { api_url: this.origin, sandbox_url: this.origin, domain: `localhost:${router.port || "80"}`, api_key: this.apiKey };
  }

  /** Stop listening. */
  async stop(): Promise<void> {
    if (this.ticker) clearInterval(this.ticker);
    await this.server?.stop(true);
    this.server = null;
  }
}

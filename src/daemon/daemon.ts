/**
 * @module daemon/daemon
 * aegisd: serves the API on `AEGIS_HOME/aegisd.sock` and owns the registry.
 *
 * Start-up order matters: state directories (0700), refuse if a live daemon
 * answers on the socket, unlink a stale socket (Bun leaves it behind), open
 * the registry, listen (socket chmod 0600), and only then write the pid file,
 * so `aegis up` seeing the pid file means the API is ready.
 */
import { websocket } from "hono/bun";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { type StatePaths, statePaths } from "../paths.ts";
import { VERSION } from "../api/version.ts";
import type { Status } from "../api/schema/status.ts";
import { type BackendSelection, selectBackend } from "../vmm/select.ts";
import { InstanceRouting } from "./instances/routing.ts";
import { Router } from "./router/router.ts";
import { createApp } from "./api/app.ts";
import { fileLogger } from "./log.ts";
import { KitDaemons } from "./kits/daemons.ts";
import { E2bFront, ENVD_PORT } from "./e2b/front.ts";
import { type Services, createServices, locateProgram } from "./services.ts";
import { checkSocketPath, probeSocket, readPidFile, unlinkIfExists } from "../control/socket.ts";
import { ensureStateDirs } from "../control/state-dirs.ts";
import { isolationSupport, reapStaleSlots } from "../vmm/network/index.ts";
import { hostChecks } from "../doctor/checks.ts";
import { UiServer, uiPortFromEnv } from "./ui/server.ts";

/**
 * Kill a VMM process left behind by a daemon that died, but only when its
 * command line shows it belongs to this AEGIS_HOME (pids get reused).
 */
export function killStaleVmm(pid: number, paths: StatePaths): void {
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  if (cmdline.includes(paths.instances)) process.kill(pid, "SIGKILL");
}

/** Where the router listens: AEGIS_ROUTER_HOST (127.0.0.1) and AEGIS_ROUTER_PORT (8099). */
export function routerAddress(env = process.env): { host: string; port: number } {
  const port = Number(env.AEGIS_ROUTER_PORT ?? 8099);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`AEGIS_ROUTER_PORT=${env.AEGIS_ROUTER_PORT} is not a port number`);
  return { host: env.AEGIS_ROUTER_HOST ?? "127.0.0.1", port };
}

/** A running daemon. */
export class Daemon {
  private server: ReturnType<typeof Bun.serve> | null = null;
  private services: Services | null = null;
  private stopping: Promise<void> | null = null;
  private idleTimer: ReturnType<typeof setInterval> | null = null;
  private router: Router | null = null;
  private kitDaemons: KitDaemons | null = null;
  private e2b: E2bFront | null = null;
  private routing: InstanceRouting | null = null;
  private ui: UiServer | null = null;
  readonly log;

  constructor(readonly paths: StatePaths = statePaths()) {
    ensureStateDirs(paths);
    this.log = fileLogger(paths.daemonLog);
  }

  /** Start listening; throws if another daemon is alive. */
  async start(): Promise<void> {
    // For tests only (test/integration/up-slow.test.ts): a start-up as slow as on a loaded machine, so `aegis up`'s
    // longer wait can be checked; capped at 60 s. No user-facing behaviour depends on it.
    const delayMs = Number(process.env.AEGIS_TEST_START_DELAY_MS ?? 0);
    if (Number.isFinite(delayMs) && delayMs > 0) await Bun.sleep(Math.min(delayMs, 60_000));
    checkSocketPath(this.paths.socket);
    if (await probeSocket(this.paths.socket)) {
      throw new Error(`aegisd already running (pid ${readPidFile(this.paths.pidFile) ?? "unknown"})`);
    }
    unlinkIfExists(this.paths.socket);
    // Lines with fields are the backend's own (network, adoption); plain ones are asset progress.
    const backend = selectBackend({ log: (msg, fields) => (fields ? this.log.info(msg, fields) : this.log.info("guest assets", { progress: msg })) });
    const services = createServices(this.paths, this.log, { backend: backend.backend, reason: backend.reason });
    this.services = services;
    // Live restore: re-adopt the VMs a previous daemon left running. It takes a second or two (QEMU
    // reconnects its control channel once a second), so the daemon listens meanwhile, but every API
    // request and every router wake waits for it: nothing may boot a second VM for an instance whose
    // first one is being adopted.
    const restoreStarted = Date.now();
    const restored = Promise.all([services.tasks.reconcile((pid) => killStaleVmm(pid, this.paths)), services.instances.reconcile((pid) => killStaleVmm(pid, this.paths))])
      .then(
        () => {
          for (const k of services.vms.killUnadopted()) this.log.warn("killed a VM left by the previous aegisd that nothing re-adopts", k);
        },
        (err: unknown) => this.log.error("live restore failed", { error: err instanceof Error ? (err.stack ?? err.message) : String(err) }),
      )
      // Only now: an adopted VM's network slot is re-claimed for this pid by then, so the reap leaves it alone.
      .then(() => this.reapNetworks())
      .then(() => this.log.info("live restore done", { ms: Date.now() - restoreStarted }));
    services.instances.restored = restored;
    const router = routerAddress();
    await this.startRouter(services, router);
    services.mcp.routerOrigin = () => this.router?.origin ?? null;
    const e2b = new E2bFront(services, this.paths, this.log, () => this.router?.origin ?? `http://${router.host}:${router.port}`);
    try {
      await e2b.start();
    } catch (err) {
      await this.router?.stop();
      services.db.close();
      throw err;
    }
    this.e2b = e2b;
    if (this.routing) this.routing.local = (target, req) => (target.guestPort === ENVD_PORT && e2b.isSandbox(target.instanceId) ? e2b.envd(target.instanceId, req) : null);
    const status = () => this.status(services, backend, router);
    // The web UI listens only once `aegis ui` asks (POST /v1/ui); see daemon/ui/server.ts.
    const ui = new UiServer(this.paths.data, { ...services, log: this.log, status, doctor: hostChecks });
    this.ui = ui;
    const app = createApp({ ...services, log: this.log, status, e2bEnv: () => e2b.env(), ui: { start: (port) => ui.start(port ?? uiPortFromEnv()) } });
    // idleTimeout 0: streaming responses (logs, tether) may be quiet for long
    // stretches; Bun's default 10 s would cut them. Bun's types omit the option
    // for unix listeners although it applies there too.
    // `websocket`: hono's Bun handler, for the interactive session endpoints (api/sessions.ts).
    const fetch = async (req: Request, server: unknown): Promise<Response> => {
      await restored;
      return app.fetch(req, server);
    };
    this.server = Bun.serve({ unix: this.paths.socket, fetch, websocket, idleTimeout: 0 } as unknown as Parameters<typeof Bun.serve>[0]);
    chmodSync(this.paths.socket, 0o600);
    writeFileSync(this.paths.pidFile, `${process.pid}\n`, { mode: 0o600 });
    this.startKitDaemons(services);
    this.startIdlePolicy(services);
    this.log.info("aegisd started", { pid: process.pid, version: VERSION, backend: backend.name, accel: backend.accel });
    // Build the guest assets in the background so the first `aegis run` does not pay for it.
    // A failure is only logged here: the first boot retries and reports it to its caller.
    services.vms.warm().then(
      () => this.log.info("guest assets ready"),
      (err: unknown) => this.log.error("guest assets failed", { error: String(err) }),
    );
  }

  /** `GET /v1/status`. */
  private status(services: Services, backend: BackendSelection, router: { host: string; port: number }): Status {
    return {
      status: "running",
      version: VERSION,
      pid: process.pid,
      home: this.paths.home,
      backend: backend.name,
      backend_reason: backend.reason,
      accel: backend.accel,
      capabilities: {
        pause_resume: backend.capabilities.pauseResume,
        memory_snapshots: backend.capabilities.memorySnapshots,
        boot_from_disk_layers: backend.capabilities.diskLayers,
      },
      kits_installed: services.kits.list().length,
      router_url: this.router?.origin ?? `http://${router.host}:${router.port}`,
      daemons: this.kitDaemons?.statuses() ?? [],
    };
  }

  /** The router on 127.0.0.1:8099 (or AEGIS_ROUTER_*), with every instance's public ports. */
  /**
   * Remove the namespaces, veths and nft entries of VMs whose aegisd died
   * (any AEGIS_HOME: the claims are machine-wide), after the live-restore
   * pass, so the slots of re-adopted VMs are ours again and stay.
   */
  private async reapNetworks(): Promise<void> {
    if (isolationSupport()) return;
    try {
      const reaped = await reapStaleSlots(this.paths.home);
      if (reaped.length > 0) this.log.info("removed stale VM networks", { slots: reaped });
    } catch (err) {
      this.log.warn("could not remove stale VM networks", { error: err instanceof Error ? err.message : String(err) });
    }
  }

  private async startRouter(services: Services, address: { host: string; port: number }): Promise<void> {
    const routing = new InstanceRouting(services.instances, this.log);
    this.routing = routing;
    this.router = new Router(routing, { host: address.host, httpPort: address.port, home: this.paths.home, log: (msg, fields) => this.log.warn(`router: ${msg}`, fields) });
    try {
      await this.router.start();
    } catch (err) {
      services.db.close();
      throw new Error(`${(err as Error).message}${address.port === 8099 ? " (set AEGIS_ROUTER_PORT to use another port)" : ""}`);
    }
    await routing.bind(this.router);
  }

  /** Supervise the installed kits' daemons, following kit installs and uninstalls. */
  private startKitDaemons(services: Services): void {
    const kitDaemons = new KitDaemons(this.paths, services.kits, locateProgram, this.log);
    this.kitDaemons = kitDaemons;
    services.kits.onChange.push(() => kitDaemons.sync());
    // The previous aegisd's daemons go first (at once when there are none, the usual start).
    void kitDaemons.reapStale().then(
      () => kitDaemons.sync(),
      (err: unknown) => this.log.error("could not stop the kit daemons of the previous aegisd", { error: String(err) }),
    );
  }

  /** Check the idle policy once a second (never two checks at once). */
  private startIdlePolicy(services: Services): void {
    let ticking = false;
    this.idleTimer = setInterval(() => {
      if (ticking) return;
      ticking = true;
      void services.instances.idleTick().finally(() => {
        ticking = false;
      });
    }, 1000);
  }

  /**
   * Stop serving and release the socket and pid file. Idempotent.
   * `keepVms` (SIGTERM, `aegis down --keep-vms`: an upgrade or a restart)
   * leaves running tasks and instances running in their VMs, recorded in the
   * registry, for the next aegisd to re-adopt; otherwise (`aegis down`,
   * SIGINT) every VM is stopped. Template builds and boots in flight are
   * killed either way.
   */
  stop(reason: string, opts: { keepVms: boolean } = { keepVms: false }): Promise<void> {
    this.stopping ??= (async () => {
      this.log.info("aegisd stopping", { reason, keep_vms: opts.keepVms });
      await this.server?.stop(true);
      await this.ui?.stop();
      await this.router?.stop();
      await this.e2b?.stop();
      if (this.idleTimer) clearInterval(this.idleTimer);
      await this.kitDaemons?.stop();
      await this.services?.tasks.shutdown(opts);
      await this.services?.instances.shutdown(opts);
      if (opts.keepVms) await this.services?.vms.detachAll();
      else await this.services?.vms.killAll();
      this.services?.db.close();
      unlinkIfExists(this.paths.socket);
      if (readPidFile(this.paths.pidFile) === process.pid) unlinkIfExists(this.paths.pidFile);
      this.log.info("aegisd stopped");
    })();
    return this.stopping;
  }
}

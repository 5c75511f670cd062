/**
 * @module daemon/kits/daemons
 * Kit daemons (e.g. the Agent Kit's `aegis-gateway`): aegisd starts every
 * daemon an installed kit declares once its config file exists, keeps it
 * running (a crash is restarted with exponential backoff, 1 s doubling to
 * 60 s, reset after a minute of good health), reports each one in
 * `GET /v1/status`, and stops them when it stops. `aegis up --no-daemons`
 * (AEGIS_NO_DAEMONS=1 on aegisd) starts none.
 *
 * Each daemon's output goes to `data/<name>.log`. A daemon left behind by
 * an aegisd killed with SIGKILL is stopped, and gone, before the new aegisd
 * starts any (two gateways would both poll the same bot): it is found by the
 * marker every kit daemon carries in its environment (kits/stale.ts), and
 * by the pids kept in `data/kit-daemons.json` (written atomically after
 * every start and exit) where /proc cannot be scanned.
 */
import { closeSync, existsSync, openSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { KitDaemon } from "../../api/schema/kits.ts";
import { selfCommand, type StatePaths } from "../../paths.ts";
import type { Logger } from "../api/deps.ts";
import { childEnv } from "../../control/daemon-process.ts";
import { processAlive } from "../../control/socket.ts";
import type { KitsService } from "./service.ts";
import { canScanEnvironments, KIT_DAEMON_ENV, readPidFile, running, scanKitDaemons, type StaleDaemon } from "./stale.ts";

/** What `aegis status` reports for one kit daemon. */
export interface KitDaemonStatus {
  name: string;
  kit: string;
  state: "running" | "no-config" | "disabled" | "restarting" | "stopped";
  pid: number | null;
  restarts: number;
  /** The config file the daemon waits for, when it has none. */
  config: string | null;
  last_exit: number | null;
}

/** Roles of this binary that kits may name as daemons (run through the hidden argument when no link exists). */
const ROLE_ARGS: Record<string, string> = { "aegis-gateway": "__gateway" };

interface Managed {
  status: KitDaemonStatus;
  spec: KitDaemon;
  proc: ReturnType<typeof Bun.spawn> | null;
  timer: ReturnType<typeof setTimeout> | null;
  backoffMs: number;
  startedAt: number;
}

/** Supervisor of every installed kit's daemons. */
export class KitDaemons {
  private readonly managed = new Map<string, Managed>();
  private stopping = false;

  constructor(
    private readonly paths: StatePaths,
    private readonly kits: KitsService,
    private readonly locate: (program: string) => string | null,
    private readonly log: Logger,
    private readonly enabled = process.env.AEGIS_NO_DAEMONS !== "1",
  ) {}

  private get pidFile(): string {
    return join(this.paths.data, "kit-daemons.json");
  }

  /**
   * Stop daemons a previous aegisd left running (only processes that still
   * look like them; a SIGKILLed aegisd leaves its gateway polling), and
   * resolve once they are gone (SIGKILL after 3 s). Until then {@link sync}
   * starts nothing, so two gateways never poll the same bot or write the
   * same state file (an old one saving a stale Telegram offset or tether seq
   * last would resend messages at the next start).
   */
  async reapStale(): Promise<void> {
    this.reaping = true;
    try {
      const signalled = this.signalStale();
      if (signalled.length === 0) return;
      await waitGone(signalled, 3000);
      for (const s of signalled) if (running(s.pid)) kill(s.pid, "SIGKILL");
      // Only once it is really gone (not just signalled) may a new one start.
      if (!(await waitGone(signalled, 5000))) throw new Error(`a kit daemon of the previous aegisd survives SIGKILL (pids ${signalled.filter((s) => running(s.pid)).map((s) => s.pid).join(", ")})`);
      for (const s of signalled) this.log.warn("stopped a kit daemon left by a previous aegisd", { daemon: s.name, pid: s.pid });
    } finally {
      this.reaping = false;
    }
  }

  /** Set while stale daemons are being stopped: nothing starts meanwhile. */
  private reaping = false;

  /** SIGTERM every daemon of this AEGIS_HOME still running (found by environment marker, and by the pid file). */
  private signalStale(): StaleDaemon[] {
    const found = new Map<number, StaleDaemon>();
    if (canScanEnvironments()) for (const d of scanKitDaemons(this.paths.home)) found.set(d.pid, d);
    for (const [name, pid] of Object.entries(readPidFile(this.pidFile))) {
      if (found.has(pid) || pid === process.pid) continue;
      let cmdline = "";
      try {
        cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      } catch {
        continue; // gone (or no /proc: nothing to check it against, so leave it)
      }
      if (cmdline.includes(name) || cmdline.includes(ROLE_ARGS[name] ?? name)) found.set(pid, { name, pid });
    }
    for (const d of found.values()) kill(d.pid, "SIGTERM");
    return [...found.values()];
  }

  private savePids(): void {
    const pids: Record<string, number> = {};
    for (const [name, m] of this.managed) if (m.proc && m.status.pid) pids[name] = m.status.pid;
    writePidFile(this.pidFile, pids);
  }

  /** Bring the managed set in line with the installed kits (start new, stop removed). */
  sync(): void {
    if (this.stopping || this.reaping) return;
    const wanted = new Map<string, { kit: string; spec: KitDaemon }>();
    for (const kit of this.kits.list()) for (const d of kit.manifest.daemons ?? []) wanted.set(d.name, { kit: kit.manifest.name, spec: d });
    for (const [name, m] of this.managed) {
      if (!wanted.has(name)) {
        this.halt(m);
        this.managed.delete(name);
      }
    }
    for (const [name, { kit, spec }] of wanted) {
      let m = this.managed.get(name);
      if (!m) {
        m = {
          spec,
          proc: null,
          timer: null,
          backoffMs: 1000,
          startedAt: 0,
          status: { name, kit, state: "stopped", pid: null, restarts: 0, config: null, last_exit: null },
        };
        this.managed.set(name, m);
      }
      if (!m.proc && !m.timer) this.launch(m);
    }
    this.savePids();
  }

  private launch(m: Managed): void {
    m.timer = null;
    const config = m.spec.requires_config ? join(this.paths.home, m.spec.requires_config) : null;
    m.status.config = config;
    if (!this.enabled) {
      m.status.state = "disabled";
      return;
    }
    if (config && !existsSync(config)) {
      m.status.state = "no-config";
      return;
    }
    const [program, ...args] = m.spec.command;
    const located = this.locate(program!);
    const argv = located ? [located, ...args] : ROLE_ARGS[program!] ? [...selfCommand(ROLE_ARGS[program!]!), ...args] : null;
    if (!argv) {
      m.status.state = "stopped";
      this.log.error("kit daemon program not found", { daemon: m.status.name, program });
      return;
    }
    const fd = openSync(join(this.paths.data, `${m.status.name}.log`), "a", 0o600);
    try {
      // The marker lets the next aegisd find this daemon even if we die before the pid file says so (kits/stale.ts).
      m.proc = Bun.spawn(argv, { stdio: ["ignore", fd, fd], env: childEnv({ AEGIS_HOME: this.paths.home, [KIT_DAEMON_ENV]: m.status.name }) });
    } finally {
      closeSync(fd);
    }
    m.startedAt = Date.now();
    m.status.state = "running";
    m.status.pid = m.proc.pid;
    this.savePids();
    this.log.info("kit daemon started", { daemon: m.status.name, kit: m.status.kit, pid: m.proc.pid });
    const proc = m.proc;
    void proc.exited.then((code) => this.exited(m, proc, code));
  }

  private exited(m: Managed, proc: ReturnType<typeof Bun.spawn>, code: number): void {
    if (m.proc !== proc) return;
    m.proc = null;
    m.status.pid = null;
    m.status.last_exit = code;
    this.savePids();
    if (this.stopping || !this.managed.has(m.status.name)) {
      m.status.state = "stopped";
      return;
    }
    if (Date.now() - m.startedAt > 60_000) m.backoffMs = 1000;
    m.status.state = "restarting";
    m.status.restarts++;
    this.log.warn("kit daemon exited; restarting", { daemon: m.status.name, code, in_ms: m.backoffMs });
    m.timer = setTimeout(() => this.launch(m), m.backoffMs);
    m.backoffMs = Math.min(m.backoffMs * 2, 60_000);
  }

  private halt(m: Managed): void {
    if (m.timer) clearTimeout(m.timer);
    m.timer = null;
    m.proc?.kill("SIGTERM");
  }

  /** Status of every managed daemon. */
  statuses(): KitDaemonStatus[] {
    return [...this.managed.values()].map((m) => ({ ...m.status }));
  }

  /** Stop every daemon (SIGTERM, then SIGKILL after 3 s). */
  async stop(): Promise<void> {
    this.stopping = true;
    const procs = [...this.managed.values()].map((m) => {
      this.halt(m);
      return m.proc;
    });
    await Promise.all(
      procs.map(async (p) => {
        if (!p) return;
        const done = await Promise.race([p.exited.then(() => true), Bun.sleep(3000).then(() => false)]);
        if (!done && processAlive(p.pid)) p.kill("SIGKILL");
      }),
    );
    writePidFile(this.pidFile, {});
  }
}

/** Signal `pid`, ignoring that it is already gone. */
function kill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
  }
}

/** Wait up to `ms` until none of `daemons` runs; whether they are all gone. */
async function waitGone(daemons: StaleDaemon[], ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (daemons.some((d) => running(d.pid))) {
    if (Date.now() > deadline) return false;
    await Bun.sleep(20);
  }
  return true;
}

/** Replace the pid file atomically (a SIGKILL mid-write leaves the old file, never a torn one). */
function writePidFile(path: string, pids: Record<string, number>): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(pids)}\n`, { mode: 0o600 });
  renameSync(tmp, path);
}

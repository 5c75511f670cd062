/**
 * @module daemon/e2b/sandboxes
 * E2B sandboxes as Aegis instances. A sandbox is an instance whose spec has
 * an `e2b` part (template, metadata, lifetime, sealed envd token); only such
 * instances are visible through the E2B API, and they appear in
 * `aegis instance list` like any other.
 *
 * Templates: `base` (the default) is the base rootfs; the name of an app
 * runs its latest release (with the app's command: an app is a server); any
 * other value is an image reference, pulled when missing. Except for apps the
 * sandbox's main process only keeps the VM up (a shell sleep loop), since in
 * E2B a template's process does not decide the sandbox's life.
 *
 * Lifetime (E2B's `timeout`): when `end_at` passes, the sandbox is killed, or
 * paused when it was created with autoPause. Connect (or the v1 resume)
 * wakes a paused sandbox and restarts its lifetime; setTimeout sets it from
 * now. Aegis's own idle pause is off for sandboxes (E2B keeps a sandbox
 * running until its timeout); a paused sandbox still follows the idle stop
 * (memory snapshot to disk after AEGIS_STOP_AFTER), and connect restores it.
 * E2B's states are `running` and `paused`; a stopped instance counts as
 * paused (it resumes on connect). An envd call or a router connection wakes
 * a paused sandbox too (Aegis wakes on demand); its lifetime then restarts.
 */
import { NotFound, InvalidRequest, Conflict } from "../../api/errors.ts";
import type { Instance } from "../../api/schema/instances.ts";
import { runInGuest } from "../../vmm/guest-process.ts";
import type { Logger } from "../api/deps.ts";
import type { AppsService } from "../apps/service.ts";
import type { InstancesService } from "../instances/service.ts";
import type { E2bSandboxSpec, InstanceRow } from "../registry/instances.ts";
import type { SecretCipher } from "../secrets/cipher.ts";
import { newAccessToken, openText, sealText } from "./auth.ts";
import type { NewSandbox } from "./rest-schema.ts";
import { e2bNetworkInfo, policyFromE2b } from "./network.ts";

/** The envd version aegisd advertises: the highest whose features (as the SDK gates them) are all served. See envd.ts. */
export const ENVD_VERSION = "0.6.1";

/** E2B's default lifetime when the request gives none (seconds). */
export const DEFAULT_TIMEOUT_S = 300;

/** What every E2B response calls the client. */
const CLIENT_ID = "aegis";

/** The command that keeps a sandbox's VM up. */
const KEEP_ALIVE = ["/bin/sh", "-c", "while :; do sleep 3600; done"];

/** The sandbox's E2B state. */
export function e2bState(state: Instance["state"]): "running" | "paused" {
  return state === "running" || state === "starting" ? "running" : "paused";
}

/** Sandboxes over the instance service. */
export class E2bSandboxes {
  /** Called with a new sandbox's id once it runs (the envd front looks up its shell ahead of the first command). */
  readonly onCreated: ((id: string) => void)[] = [];
  private readonly cpu = new Map<string, { busy: number; total: number }>();

  constructor(
    private readonly deps: { instances: InstancesService; apps: AppsService; cipher: SecretCipher; log: Logger },
  ) {}

  /** A sandbox's row; NotFound (E2B's 404) for unknown ids and for instances that are not sandboxes. */
  row(id: string): InstanceRow & { spec: { e2b: E2bSandboxSpec } } {
    const row = this.deps.instances.find(id);
    if (!row || !row.spec.e2b) throw new NotFound(`sandbox "${id}" not found`);
    return row as InstanceRow & { spec: { e2b: E2bSandboxSpec } };
  }

  /** A sandbox's row, or null. */
  rowOrNull(id: string): (InstanceRow & { spec: { e2b: E2bSandboxSpec } }) | null {
    const row = this.deps.instances.find(id);
    return row?.spec.e2b ? (row as InstanceRow & { spec: { e2b: E2bSandboxSpec } }) : null;
  }

  /** The envd access token of a sandbox. */
  accessToken(id: string): string {
    const row = this.row(id);
    return openText(this.deps.cipher, `token:${row.id}`, row.spec.e2b.token);
  }

  /** Every sandbox. */
  rows(): (InstanceRow & { spec: { e2b: E2bSandboxSpec } })[] {
    return this.deps.instances
      .list()
      .filter((i) => i.e2b !== null)
      .map((i) => this.row(i.id));
  }

  /** Create and boot a sandbox. */
  async create(body: NewSandbox): Promise<Record<string, unknown>> {
    // E2B's allowInternetAccess and network.allowOut/denyOut as an Aegis policy (network.ts); without them the
    // template's (an app's) policy, else the default, applies.
    const policy = policyFromE2b(body.allow_internet_access, body.network);
    const network = policy ? { network: policy } : {};
    if (body.volumeMounts !== undefined && body.volumeMounts.length > 0) throw new InvalidRequest("volume mounts are not supported by Aegis's E2B API", "omit volumeMounts, or use an Aegis instance with --workspace");
    if (body.mcp !== undefined) throw new InvalidRequest("the MCP gateway option (mcp) is not supported by Aegis's E2B API", "omit mcp");
    if (body.iam !== undefined) throw new InvalidRequest("IAM tokens (iam) are not supported by Aegis's E2B API", "omit iam");
    const template = body.templateID;
    const app = this.deps.apps.list().find((a) => a.name === template || a.id === template);
    const timeout = body.timeout ?? DEFAULT_TIMEOUT_S;
    const now = Date.now();
    const token = newAccessToken();
    const e2b: E2bSandboxSpec = {
      template,
      metadata: body.metadata ?? {},
      timeout_s: timeout,
      end_at: new Date(now + timeout * 1000).toISOString(),
      auto_pause: body.autoPause === true,
      started_at: new Date(now).toISOString(),
      token: { nonce: "", ciphertext: "" },
    };
    // The token is sealed under the instance id, known only once the instance exists: seal a placeholder first.
    const source = template === "base" ? {} : app ? { app: app.name } : { image: template, command: KEEP_ALIVE, entrypoint: [] };
    const inst = await this.deps.instances.create(
      { ...(template === "base" ? { command: KEEP_ALIVE } : {}), ...source, ...network, env: body.envVars ?? {}, pause_after_s: 0 },
      undefined,
      { ...e2b, token: sealText(this.deps.cipher, "pending", token) },
    );
    this.deps.instances.setE2b(inst.id, { ...e2b, token: sealText(this.deps.cipher, `token:${inst.id}`, token) });
    this.deps.log.info("e2b sandbox created", { instance: inst.id, template, timeout_s: timeout });
    for (const hook of this.onCreated) hook(inst.id);
    return this.sandboxJson(this.row(inst.id), token);
  }

  /** The create/connect answer. */
  private sandboxJson(row: InstanceRow & { spec: { e2b: E2bSandboxSpec } }, token?: string): Record<string, unknown> {
    return {
      templateID: row.spec.e2b.template,
      sandboxID: row.id,
      alias: row.spec.e2b.template,
      clientID: CLIENT_ID,
      envdVersion: ENVD_VERSION,
      envdAccessToken: token ?? this.accessToken(row.id),
      trafficAccessToken: null,
      domain: null,
    };
  }

  /** The list entry of a sandbox (GET /v2/sandboxes). */
  listed(row: InstanceRow & { spec: { e2b: E2bSandboxSpec } }): Record<string, unknown> {
    const e = row.spec.e2b;
    return {
      templateID: e.template,
      alias: e.template,
      sandboxID: row.id,
      clientID: CLIENT_ID,
      startedAt: e.started_at,
      endAt: e.end_at,
      cpuCount: row.spec.vcpus,
      memoryMB: row.spec.memory_mb,
      diskSizeMB: 0,
      metadata: e.metadata,
      state: e2bState(row.state),
      envdVersion: ENVD_VERSION,
      volumeMounts: [],
    };
  }

  /** GET /sandboxes/{id}. */
  info(id: string): Record<string, unknown> {
    const row = this.row(id);
    return {
      ...this.listed(row),
      envdAccessToken: this.accessToken(row.id),
      domain: null,
      ...e2bNetworkInfo(row.spec.network),
      lifecycle: { onTimeout: row.spec.e2b.auto_pause ? "pause" : "kill", autoResume: false },
    };
  }

  /**
   * Connect (v2) or resume (v1): wake the sandbox and restart its lifetime.
   * `resumed` tells whether it was paused (201) or already running (200).
   */
  async connect(id: string, timeout: number | undefined, opts: { autoPause?: boolean; mustBePaused?: boolean } = {}): Promise<{ resumed: boolean; body: Record<string, unknown> }> {
    const row = this.row(id);
    const wasRunning = e2bState(row.state) === "running";
    if (opts.mustBePaused && wasRunning) throw new Conflict(`sandbox "${id}" is already running`);
    await this.deps.instances.ensureRunning(row.id);
    const now = Date.now();
    const e = this.row(row.id).spec.e2b;
    const timeoutS = timeout ?? e.timeout_s;
    const end = wasRunning ? Math.max(Date.parse(e.end_at), timeout === undefined ? 0 : now + timeout * 1000) : now + timeoutS * 1000;
    this.deps.instances.setE2b(row.id, {
      ...e,
      timeout_s: timeoutS,
      end_at: new Date(end).toISOString(),
      ...(wasRunning ? {} : { started_at: new Date(now).toISOString() }),
      paused: false,
      ...(opts.autoPause !== undefined ? { auto_pause: opts.autoPause } : {}),
    });
    return { resumed: !wasRunning, body: this.sandboxJson(this.row(row.id)) };
  }

  /** setTimeout: the lifetime ends `timeout` seconds from now. */
  setTimeout(id: string, timeout: number): void {
    const row = this.row(id);
    this.deps.instances.setE2b(row.id, { ...row.spec.e2b, timeout_s: timeout, end_at: new Date(Date.now() + timeout * 1000).toISOString() });
  }

  /** Kill: delete the instance (VM, disks, snapshot). */
  async kill(id: string): Promise<void> {
    const row = this.row(id);
    await this.deps.instances.delete(row.id);
    this.cpu.delete(row.id);
    this.deps.log.info("e2b sandbox killed", { instance: row.id });
  }

  /** Pause; Conflict (409) when it is already paused. */
  async pause(id: string): Promise<void> {
    const row = this.row(id);
    if (e2bState(row.state) === "paused") throw new Conflict(`sandbox "${id}" is already paused`);
    try {
      await this.deps.instances.pause(row.id);
    } catch (err) {
      // A backend that cannot pause keeps the sandbox's memory on disk instead.
      if ((err as { code?: string }).code !== "precondition_failed" || this.deps.instances.row(row.id).state !== "running") throw err;
      await this.deps.instances.stop(row.id, { snapshot: true });
    }
  }

  /**
   * One metrics sample of a running sandbox (none for a paused one: it is not
   * woken for metrics). CPU use is measured since the previous sample (or
   * since boot), memory from the guest's /proc/meminfo, disk from `df`.
   */
  async metrics(id: string): Promise<Record<string, unknown>[]> {
    const row = this.row(id);
    const rt = row.state === "running" ? await this.deps.instances.ensureRunning(row.id) : null;
    if (!rt?.vm) return [];
    const r = await runInGuest(rt.vm.channel, { argv: ["/bin/sh", "-c", "head -1 /proc/stat; cat /proc/meminfo; df -kP / 2>/dev/null | tail -1"], timeoutMs: 10_000 });
    const out = r.stdout.toString("utf8");
    const cpuLine = /^cpu\s+(.+)$/m.exec(out)?.[1]?.trim().split(/\s+/).map(Number) ?? [];
    const total = cpuLine.reduce((a, b) => a + b, 0);
    const busy = total - (cpuLine[3] ?? 0) - (cpuLine[4] ?? 0);
    const prev = this.cpu.get(row.id) ?? { busy: 0, total: 0 };
    this.cpu.set(row.id, { busy, total });
    const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(out)?.[1] ?? 0) * 1024;
    const df = /\s(\d+)\s+(\d+)\s+(\d+)\s+\d+%\s+\/\s*$/m.exec(out);
    const memTotal = kb("MemTotal");
    return [
      {
        timestamp: new Date().toISOString(),
        timestampUnix: Math.floor(Date.now() / 1000),
        cpuCount: row.spec.vcpus,
        cpuUsedPct: total > prev.total ? Math.round((10000 * (busy - prev.busy)) / (total - prev.total)) / 100 : 0,
        memTotal,
        memUsed: memTotal - kb("MemAvailable"),
        memCache: kb("Cached"),
        diskTotal: df ? Number(df[1]) * 1024 : 0,
        diskUsed: df ? Number(df[2]) * 1024 : 0,
      },
    ];
  }

  /**
   * The lifetime check (once a second): kill, or pause with autoPause, the
   * running sandboxes past their end. A sandbox woken by an envd call or a
   * router connection rather than by connect (it was seen paused, and runs
   * now) gets a fresh lifetime first, as connect would give it.
   */
  async tick(now = Date.now()): Promise<void> {
    for (const { id } of this.rows()) {
      // Read afresh: an earlier step of this loop awaited, and connect may have changed the row meanwhile.
      const row = this.rowOrNull(id);
      if (!row) continue;
      const e = row.spec.e2b;
      const running = e2bState(row.state) === "running";
      if (!running && !e.paused) this.deps.instances.setE2b(row.id, { ...e, paused: true });
      if (running && e.paused) {
        this.deps.instances.setE2b(row.id, { ...e, paused: false, started_at: new Date(now).toISOString(), end_at: new Date(now + e.timeout_s * 1000).toISOString() });
        continue;
      }
      if (!running || Date.parse(e.end_at) > now) continue;
      try {
        if (row.spec.e2b.auto_pause) {
          this.deps.log.info("e2b sandbox timed out; pausing", { instance: row.id });
          await this.pause(row.id);
        } else {
          this.deps.log.info("e2b sandbox timed out; killing", { instance: row.id });
          await this.kill(row.id);
        }
      } catch (err) {
        this.deps.log.warn("e2b lifetime step failed", { instance: row.id, error: String(err) });
      }
    }
  }
}

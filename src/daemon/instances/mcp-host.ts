/**
 * @module daemon/instances/mcp-host
 * aegisd's answers to the `mcp.*` requests a guest's MCP server sends over
 * its control channel (protocol in api/schema/mcp.ts). Handlers are
 * registered on every instance VM's channel at boot, so the caller is the
 * instance that owns the channel: nothing in a request names or proves who
 * is asking. Every request is checked against the caller's stored
 * capabilities (capabilities.ts) before anything changes; a refusal is a
 * JSON-RPC error (`denied`, `not_found`, `conflict`...) whose message and
 * hint the guest's MCP server shows the model as a tool error.
 *
 * Children are ordinary instances with `parent_id`, `depth` and narrowed
 * capabilities in their spec, named in their parent's namespace: a child
 * `kid` of `agent` is `kid.agent` (names.ts), so a guest cannot squat a name
 * the user will use; the tools accept the short name for the caller's own children. They are listed, stopped and deleted with
 * their parent (InstancesService cascades) and appear in `aegis instance list`.
 *
 * Exposed ports: a child's `expose` ports are forwarded from its first boot
 * and its first one is served by the router at `<router>/<handle>/`.
 * `expose_port` on a running VM adds the forward at once (QEMU
 * `hostfwd_add`); on a backend that cannot, the port becomes reachable at
 * the next boot (`reachable: false` says so).
 *
 * Bounds: the control channel rate-limits guest requests per instance
 * (vmm/control-channel.ts) and any process in the guest can reach the
 * bridge (its socket is 0666), so requests are logged through a
 * {@link RepeatReporter} per VM: the first request of each tool and
 * outcome is one line, repeats within a minute become one summary line.
 * Guest text in a line (an error quoting a name) is clipped and escaped.
 */
import { isAppError } from "../../api/errors.ts";
import { BASE_IMAGE } from "../../api/schema/capabilities.ts";
import { type McpBridgeParams, McpBridgeErrorCode, type McpChild, type McpEndpoint } from "../../api/schema/mcp.ts";
import type { Vm } from "../../vmm/backend.ts";
import { RpcError } from "../../api/jsonrpc.ts";
import { clip } from "../../api/untrusted-text.ts";
import { RepeatReporter } from "../../vmm/guest-input.ts";
import type { Logger } from "../api/deps.ts";
import type { ImagesService } from "../images/service.ts";
import type { InstanceRow } from "../registry/instances.ts";
import { checkExpose, checkOwnership, checkSpawn, type Denied } from "./capabilities.ts";
import { childHandle, findChildRef } from "./names.ts";
import type { InstancesService } from "./service.ts";
import type { InstanceDefaults } from "./spec.ts";

/** What the MCP host uses. */
export interface McpHostDeps {
  instances: InstancesService;
  images: ImagesService;
  defaults: InstanceDefaults;
  log: Logger;
}

/** The daemon's error codes as bridge JSON-RPC codes. */
const CODE_BY_APP_ERROR: Record<string, number> = {
  invalid_request: McpBridgeErrorCode.invalidParams,
  not_found: McpBridgeErrorCode.notFound,
  conflict: McpBridgeErrorCode.conflict,
  precondition_failed: McpBridgeErrorCode.conflict,
};

function denied(d: Denied): RpcError {
  return new RpcError(McpBridgeErrorCode.denied, `denied: ${d.reason}`, { code: "denied", hint: d.hint });
}

/** Serves `mcp.*` for every instance VM. */
export class McpHost {
  /** `http://HOST:PORT` of the router once it listens (set by the daemon). */
  routerOrigin: () => string | null = () => null;
  /** One spawn at a time per parent, so two concurrent spawns cannot both pass `max_children`. */
  private readonly spawning = new Map<string, Promise<unknown>>();

  constructor(private readonly deps: McpHostDeps) {}

  /** Register the handlers on the VM's channel for the instance `id` (an `onBoot` hook). */
  attach(id: string, vm: Vm): void {
    const ch = vm.channel;
    const r = new RepeatReporter((msg, fields) => this.deps.log.info(msg, fields), id);
    ch.onClose(() => r.flush());
    ch.onRequest("mcp.self_info", () => this.run(r, id, "self_info", () => this.selfInfo(id)));
    ch.onRequest("mcp.instance_spawn", (p) => this.run(r, id, "instance_spawn", () => this.serialSpawn(id, p)));
    ch.onRequest("mcp.instance_list", () => this.run(r, id, "instance_list", () => ({ instances: this.deps.instances.children(id).map((c) => this.child(c)) })));
    ch.onRequest("mcp.instance_stop", (p) => this.run(r, id, "instance_stop", () => this.stop(id, p)));
    ch.onRequest("mcp.expose_port", (p) => this.run(r, id, "expose_port", () => this.expose(id, p.port)));
    ch.onRequest("mcp.unexpose_port", (p) => this.run(r, id, "unexpose_port", () => this.unexpose(id, p.port)));
    ch.onRequest("mcp.keepalive_acquire", (p) => this.run(r, id, "keepalive_acquire", () => this.keepalive(id, p.seconds)));
    ch.onRequest("mcp.keepalive_release", () =>
      this.run(r, id, "keepalive_release", () => {
        this.deps.instances.activity.setKeepalive(id, null);
        return { ok: true as const };
      }),
    );
  }

  /** Run one handler: count it as activity, log it (summarised), and turn daemon errors into bridge errors. */
  private async run<R>(r: RepeatReporter, id: string, tool: string, fn: () => R | Promise<R>): Promise<R> {
    this.deps.instances.activity.touch(id);
    try {
      const result = await fn();
      r.report(`ok:${tool}`, `mcp ${tool} requests`, "mcp request", { instance: id, tool });
      return result;
    } catch (err) {
      if (err instanceof RpcError) {
        r.report(`refused:${tool}`, `refused mcp ${tool} requests`, "mcp request refused", { instance: id, tool, error: clip(err.message) });
        throw err;
      }
      if (isAppError(err)) {
        r.report(`failed:${tool}`, `failed mcp ${tool} requests`, "mcp request failed", { instance: id, tool, error: clip(err.message) });
        throw new RpcError(CODE_BY_APP_ERROR[err.code] ?? McpBridgeErrorCode.internal, err.message, { code: err.code, hint: err.hint });
      }
      throw err;
    }
  }

  private caller(id: string): InstanceRow {
    const row = this.deps.instances.find(id);
    // The channel outlived its instance (deleted while a request was on its way).
    if (!row) throw new RpcError(McpBridgeErrorCode.notFound, `this instance (${id}) no longer exists`);
    return row;
  }

  private selfInfo(id: string) {
    const row = this.caller(id);
    const until = this.deps.instances.activity.keepaliveUntil(id);
    return {
      id: row.id,
      handle: row.handle,
      image: row.spec.image,
      parent_id: row.spec.parent_id,
      depth: row.spec.depth,
      expose: this.endpoints(row),
      children: this.deps.instances.children(id).length,
      capabilities: row.spec.capabilities,
      keepalive_until: until === null ? null : new Date(until).toISOString(),
    };
  }

  private serialSpawn(id: string, p: McpBridgeParams<"mcp.instance_spawn">): Promise<McpChild> {
    const prev = this.spawning.get(id) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(() => this.spawn(id, p));
    this.spawning.set(id, next);
    void next.finally(() => {
      if (this.spawning.get(id) === next) this.spawning.delete(id);
    }).catch(() => undefined);
    return next;
  }

  private async spawn(id: string, p: McpBridgeParams<"mcp.instance_spawn">): Promise<McpChild> {
    // Refuse before fetching anything; then check again, because the parent
    // may have been deleted (or the name taken) while the image was fetched.
    // From the second check to the child's row, `create` does not yield.
    this.admit(id, p);
    if (p.image) await this.deps.images.resolve(p.image);
    const { decision, memory, vcpus } = this.admit(id, p);
    const created = await this.deps.instances.create(
      {
        name: p.name,
        image: p.image,
        command: p.command,
        secrets: p.secrets,
        env: p.env,
        expose: p.expose?.map(String),
        memory_mb: memory,
        vcpus,
        // A child never gets more network than its parent: it inherits the parent's policy.
        network: this.deps.instances.row(id).spec.network,
      },
      { parent_id: id, depth: decision.depth, capabilities: decision.childCaps },
    );
    this.deps.log.info("mcp child spawned", { instance: id, child: created.id });
    return this.child(this.deps.instances.row(created.id));
  }

  /** Check a spawn request against the caller's capabilities, children and the name; throws the refusal. */
  private admit(id: string, p: McpBridgeParams<"mcp.instance_spawn">) {
    const parent = this.caller(id);
    const memory = p.memory_mb ?? this.deps.defaults.memoryMb;
    const vcpus = p.vcpus ?? this.deps.defaults.vcpus;
    const decision = checkSpawn(
      { caps: parent.spec.capabilities, depth: parent.spec.depth, children: this.deps.instances.children(id).length },
      { image: p.image ?? BASE_IMAGE, memory_mb: memory, vcpus, secrets: p.secrets ?? [], expose: p.expose ?? [] },
    );
    if (!decision.ok) throw denied(decision);
    // A child's handle is NAME.PARENT (names.ts): it can never be a user's name. A sibling's name is refused
    // here, before any pull (create refuses it too).
    if (p.name && this.deps.instances.find(childHandle(p.name, parent.handle))) {
      throw new RpcError(McpBridgeErrorCode.conflict, `this instance already has a child named "${p.name}" (${childHandle(p.name, parent.handle)})`, { code: "conflict", hint: "choose another name, or omit it to get a generated one" });
    }
    return { decision, memory, vcpus };
  }

  private async stop(id: string, p: McpBridgeParams<"mcp.instance_stop">) {
    const target = findChildRef(this.deps.instances.children(id), this.caller(id), p.instance) ?? this.deps.instances.find(p.instance) ?? undefined;
    const owned = checkOwnership(id, target ? { id: target.id, parent_id: target.spec.parent_id } : undefined, p.instance);
    if (!owned.ok) throw new RpcError(McpBridgeErrorCode.notFound, owned.reason, { code: "not_found", hint: owned.hint });
    const child = target!;
    if (p.delete) await this.deps.instances.delete(child.id);
    else await this.deps.instances.stop(child.id);
    return { id: child.id, handle: child.handle, deleted: p.delete === true };
  }

  private async expose(id: string, port: number): Promise<McpEndpoint> {
    const row = this.caller(id);
    const ok = checkExpose({ caps: row.spec.capabilities, exposed: row.spec.expose.map((e) => e.guest_port) }, port);
    if (!ok.ok) throw denied(ok);
    let current = row;
    if (!row.spec.expose.some((e) => e.guest_port === port)) {
      await this.deps.instances.setExpose(id, [...row.spec.expose, { guest_port: port, public_port: null }]);
      current = this.caller(id);
    }
    return this.endpoints(current).find((e) => e.guest_port === port)!;
  }

  private async unexpose(id: string, port: number) {
    const row = this.caller(id);
    const entries = row.spec.expose.filter((e) => e.guest_port === port);
    if (entries.length === 0) throw new RpcError(McpBridgeErrorCode.notFound, `port ${port} is not exposed`, { code: "not_found", hint: "self_info lists the exposed ports" });
    if (entries.some((e) => e.public_port !== null)) {
      throw new RpcError(McpBridgeErrorCode.denied, `port ${port} is published on the host (--expose PUBLIC:${port}); a guest cannot unpublish it`, { code: "denied", hint: "the host owner changes published ports" });
    }
    await this.deps.instances.setExpose(id, row.spec.expose.filter((e) => e.guest_port !== port));
    return { ok: true as const };
  }

  private keepalive(id: string, seconds: number) {
    // A lease for an instance that is gone would never be released.
    this.caller(id);
    const until = Date.now() + seconds * 1000;
    this.deps.instances.activity.setKeepalive(id, until);
    return { until: new Date(until).toISOString() };
  }

  /** The instance's exposed ports as a guest sees them; the router serves the first one without a public port. */
  private endpoints(row: InstanceRow): McpEndpoint[] {
    const origin = this.routerOrigin();
    const served = row.spec.expose.find((e) => e.public_port === null);
    return row.spec.expose.map((e) => {
      let url: string | null = null;
      if (e.public_port !== null) url = `tcp://127.0.0.1:${e.public_port}`;
      else if (e === served && origin) url = `${origin}/${row.handle}/`;
      const running = row.state === "running" || row.state === "paused";
      return { guest_port: e.guest_port, public_port: e.public_port, url, reachable: !running || this.deps.instances.hostPort(row.id, e.guest_port) !== null };
    });
  }

  private child(row: InstanceRow): McpChild {
    return {
      id: row.id,
      handle: row.handle,
      state: row.state,
      image: row.spec.image,
      command: row.spec.command,
      expose: this.endpoints(row),
      memory_mb: row.spec.memory_mb,
      vcpus: row.spec.vcpus,
      secrets: row.spec.secrets,
      created_at: row.created_at,
    };
  }
}

/**
 * @module daemon/instances/routing
 * The router's view of instances (its {@link RouterHooks}): which instances
 * serve HTTP (the first exposed guest port without a public port), waking
 * one on a connection (one shared wake per instance, via the per-instance
 * serial queue of `ensureRunning`), waiting until the guest port accepts,
 * and activity accounting for the idle policy. Also keeps the raw TCP
 * listeners of `--expose PUBLIC:GUEST` in step with the instances.
 */
import { BackendError } from "../../api/errors.ts";
import type { Logger } from "../api/deps.ts";
import type { HostAddress, RouteTarget, RouterHooks, ServedInstance } from "../router/types.ts";
import type { Router } from "../router/router.ts";
import type { InstancesService } from "./service.ts";
import { WakeTrace } from "./wake-trace.ts";

/** How long a woken guest may take to listen on its port. */
const PORT_WAIT_MS = 60_000;

/** Router hooks over the instance service. */
export class InstanceRouting implements RouterHooks {
  constructor(
    private readonly instances: InstancesService,
    private readonly log: Logger,
  ) {}

  servedInstances(): ServedInstance[] {
    const out: ServedInstance[] = [];
    for (const i of this.instances.list()) {
      const http = i.expose.find((e) => e.public_port === null);
      if (http) out.push({ instanceId: i.id, handle: i.handle, guestPort: http.guest_port });
    }
    return out;
  }

  async ensureReachable(target: RouteTarget): Promise<HostAddress> {
    const trace = new WakeTrace();
    const rt = await this.instances.ensureRunning(target.instanceId, trace);
    const vm = rt.vm;
    // A direct port route (router/types.ts) may name a port nobody exposed: forward it now.
    const hostPort = rt.hostPorts.get(target.guestPort) ?? (await this.instances.forwardPort(target.instanceId, target.guestPort)) ?? undefined;
    if (!vm || hostPort === undefined) throw new BackendError(`instance ${target.instanceId} does not forward guest port ${target.guestPort}`);
    const ports = rt.readyPorts;
    if (!ports.has(target.guestPort) && vm.waitForPort) {
      const { loopbackOnly } = await vm.waitForPort(target.guestPort, PORT_WAIT_MS);
      if (loopbackOnly) {
        throw new BackendError(`the server in ${target.instanceId} listens on 127.0.0.1:${target.guestPort} only`, "make it listen on 0.0.0.0 so the port can be forwarded");
      }
      ports.add(target.guestPort);
    }
    if (trace.booted) {
      trace.mark("portReady");
      this.log.info("instance wake", { instance: target.instanceId, guest_port: target.guestPort, how: trace.booted, ms: trace.phases() });
    }
    return { host: "127.0.0.1", port: hostPort };
  }

  /** Set by the daemon: ports it answers itself (E2B's envd). */
  local?: RouterHooks["local"];

  /** Direct port routes reach E2B sandboxes only: an Aegis instance serves just the ports it exposes. */
  instanceNamed(name: string): { instanceId: string; handle: string } | undefined {
    const row = this.instances.find(name) ?? this.instances.find(name.toLowerCase());
    return row?.spec.e2b ? { instanceId: row.id, handle: row.handle } : undefined;
  }

  activityStarted(instanceId: string): void {
    this.instances.activity.started(instanceId);
  }

  activityEnded(instanceId: string): void {
    this.instances.activity.ended(instanceId);
  }

  /** Listen on every instance's public ports (daemon start), and follow creations and deletions. */
  async bind(router: Router): Promise<void> {
    this.instances.onDeleted.push((id) => router.removeInstance(id));
    this.instances.onCreated.push((id) => this.forward(router, id));
    for (const i of this.instances.list()) await this.forward(router, i.id);
  }

  private async forward(router: Router, id: string): Promise<void> {
    const inst = this.instances.get(id);
    for (const e of inst.expose) {
      if (e.public_port === null) continue;
      await router.addTcpForward(e.public_port, { instanceId: inst.id, guestPort: e.guest_port });
      this.log.info("tcp forward", { instance: inst.id, public_port: e.public_port, guest_port: e.guest_port });
    }
  }
}

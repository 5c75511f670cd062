/**
 * @module daemon/vms
 * The daemon's one door to virtual machines: boots VMs on the selected
 * backend from a small launch request and tracks every VM it started, so
 * `aegis down` tears them all down. New VMs start from a template snapshot
 * when the backend supports it (no user process, secret or per-instance disk
 * is ever in a template: the guest's setup is deferred until after the
 * restore). The backend builds the guest assets
 * lazily (cached by content hash under AEGIS_HOME/guest); the daemon warms
 * them at start-up through {@link VmLauncher.warm}.
 */
import { join } from "node:path";
import { BackendError } from "../api/errors.ts";
import type { StatePaths } from "../paths.ts";
import type { Backend, PortForward, Vm } from "../vmm/backend.ts";
import type { NetworkPolicy } from "../api/network-policy.ts";
import { killGroup } from "../vmm/virtiofsd.ts";
import { boundHosts, type Substitution } from "../api/egress-secrets.ts";
import { egressCa } from "../vmm/network/index.ts";
import { forgetSubstitutions, registerSubstitutions } from "../vmm/network/egress-proxy.ts";
import { injectTrust } from "./secrets/trust.ts";
import { sameProcess } from "../vmm/vm-process.ts";
import type { VmRow, VmsTable } from "./registry/vms.ts";

/** What a caller asks for; the launcher fills in directories and the hostname. */
export interface LaunchRequest {
  id: string;
  memoryMb: number;
  vcpus: number;
  /** Image rootfs (ext4); the backend's base busybox rootfs when absent. */
  rootfs?: string;
  ports?: PortForward[];
  /** Per-instance writable layer (created by the backend when missing). */
  overlayDisk?: string;
  /** Host directory shared at /workspace. */
  workspace?: string;
  /** Host directory booted as the root filesystem (VmSpec.rootfsDir). */
  rootfsDir?: string;
  /** Restore this memory snapshot instead of cold booting. */
  restoreFrom?: string;
  /** Pod network namespace that is the VM's network (VmSpec.netnsPath). */
  netnsPath?: string;
  /** Egress policy; the default (public internet only) when absent. */
  network?: NetworkPolicy;
  /**
   * Secrets kept out of the guest (api/egress-secrets.ts): the egress proxy
   * substitutes them for their bound hosts, and the guest gets the egress CA
   * in its trust store before this resolves. Held in memory only.
   */
  substitutions?: Substitution[];
}

/** Boots and tracks VMs. */
export class VmLauncher {
  private readonly live = new Set<Vm>();
  private readonly adoptedIds = new Set<string>();

  constructor(
    private readonly paths: StatePaths,
    private readonly backend: Backend | null,
    private readonly backendReason: string,
    /** The registry of VM processes (live restore); the backend journals spawns into it. */
    readonly table?: VmsTable,
  ) {
    if (backend && table) backend.journal = table;
  }

  /**
   * Build or find the guest assets ahead of the first boot (daemon start-up),
   * then the template of the default task shape (base rootfs, 512 MB, 1 vCPU)
   * so the first `aegis run` starts in about a second. AEGIS_WARM=0 skips the
   * template (the test suite, which starts many short-lived daemons).
   */
  async warm(): Promise<void> {
    await this.backend?.prepare?.();
    if (this.templatesEnabled() && process.env.AEGIS_WARM !== "0") await this.backend?.warmTemplate?.({ memoryMb: 512, vcpus: 1 });
  }

  private templatesEnabled(): boolean {
    return this.backend?.bootFromTemplate !== undefined && process.env.AEGIS_TEMPLATES !== "0";
  }

  /** Boot a VM and resolve once its harness is ready. */
  async launch(req: LaunchRequest): Promise<Vm> {
    if (!this.backend) {
      throw new BackendError(`no VM backend is available: ${this.backendReason}`, "install QEMU (apt-get install qemu-system-x86) and check 'aegis doctor'");
    }
    const spec = {
      id: req.id,
      runDir: join(this.paths.instances, req.id),
      memoryMb: req.memoryMb,
      vcpus: req.vcpus,
      rootfs: req.rootfs,
      ports: req.ports ?? [],
      hostname: req.id,
      overlayDisk: req.overlayDisk,
      workspace: req.workspace,
      rootfsDir: req.rootfsDir,
      restoreFrom: req.restoreFrom,
      network: req.network,
      egressHosts: boundHosts(req.substitutions ?? []),
      ...(req.netnsPath ? { netnsPath: req.netnsPath } : {}),
    };
    const subs = req.substitutions ?? [];
    this.substitute(req.id, subs);
    // Start from the shape's template snapshot when the backend has them
    // (~1 s instead of a ~3.7 s cold boot under TCG); AEGIS_TEMPLATES=0 turns it off.
    let vm: Vm;
    try {
      vm = this.templatesEnabled() ? await this.backend.bootFromTemplate!(spec) : await this.backend.boot(spec);
    } catch (err) {
      forgetSubstitutions(req.id, subs);
      throw err;
    }
    this.table?.ready(req.id, vm.pid);
    this.hold(vm);
    vm.exited.then(() => forgetSubstitutions(req.id, subs), () => forgetSubstitutions(req.id, subs));
    if (subs.length > 0) {
      try {
        await injectTrust(vm.channel, egressCa(this.paths.home).certPem);
      } catch (err) {
        vm.kill();
        throw new BackendError(`VM ${req.id}: could not install the Aegis egress CA in the guest's trust store: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    return vm;
  }

  /**
   * Give the egress proxy VM `id`'s substituted secrets (at launch, and for a
   * VM a previous aegisd left running: live restore re-plans them).
   */
  substitute(id: string, subs: Substitution[]): void {
    registerSubstitutions(id, subs);
  }

  private hold(vm: Vm): void {
    this.live.add(vm);
    const forget = () => this.live.delete(vm);
    vm.exited.then(forget, forget);
  }

  /** Record the port forwards `id`'s VM has now (live restore re-adopts them). */
  recordPorts(id: string, ports: PortForward[]): void {
    this.table?.setPorts(id, ports);
  }

  /** The recorded VM of `id` (a previous daemon's), or undefined. */
  recorded(id: string): VmRow | undefined {
    return this.table?.all().find((r) => r.rec.id === id);
  }

  /**
   * Re-adopt the VM a previous daemon left running for `id` (live restore):
   * `beforeReplay` subscribes to its notifications before the guest replays
   * what it held. Throws when it cannot be adopted (the caller kills it).
   */
  async adopt(row: VmRow, beforeReplay: (vm: Vm) => void): Promise<Vm> {
    if (!this.backend?.adopt) throw new Error(`the ${this.backend?.name ?? "current"} backend cannot adopt running VMs`);
    if (!row.ready) throw new Error(`VM ${row.rec.id} was still booting when the previous aegisd stopped`);
    const vm = await this.backend.adopt(row.rec, row.spec, beforeReplay);
    this.hold(vm);
    this.adoptedIds.add(row.rec.id);
    return vm;
  }

  /**
   * Kill every recorded VM nobody re-adopted (template builds, VMs of
   * deleted owners), once tasks and instances are reconciled; returns
   * what was killed, for aegisd's log.
   */
  killUnadopted(): { id: string; pid: number }[] {
    const killed: { id: string; pid: number }[] = [];
    for (const row of this.allRecorded()) {
      if (this.adoptedIds.has(row.rec.id)) continue;
      if (this.killRecorded(row)) killed.push({ id: row.rec.id, pid: row.rec.pid });
    }
    return killed;
  }

  /** Kill a recorded VM that is not adopted, if its process is still the one recorded, and forget it. Returns whether one was killed. */
  killRecorded(row: VmRow): boolean {
    let killed = false;
    if (sameProcess(row.rec.pid, row.rec.startTime)) {
      killGroup(row.rec.pid);
      killed = true;
    }
    if (row.rec.virtiofsdPid !== undefined && row.rec.virtiofsdStartTime !== undefined && sameProcess(row.rec.virtiofsdPid, row.rec.virtiofsdStartTime)) killGroup(row.rec.virtiofsdPid);
    this.table?.remove(row.rec.id);
    return killed;
  }

  /** Every recorded VM (tasks, instances, template builds). */
  allRecorded(): VmRow[] {
    return this.table?.all() ?? [];
  }

  /** VMM pids of the VMs handed out (what a shutdown that keeps VMs leaves running). */
  livePids(): Set<number> {
    return new Set([...this.live].map((vm) => vm.pid));
  }

  /** Daemon shutdown that leaves the handed-out VMs running for the next daemon: only template builds and boots in flight die. */
  async detachAll(): Promise<void> {
    await this.backend?.killAll?.(this.livePids());
  }

  /**
   * Kill every VM this daemon started (daemon shutdown), then whatever else
   * the backend still runs: template builds and boots not yet handed out
   * (the warm-up's template VM when `aegis down` comes right after `aegis up`).
   */
  async killAll(): Promise<void> {
    const vms = [...this.live];
    for (const vm of vms) vm.kill();
    await Promise.all(vms.map((vm) => vm.exited));
    await this.backend?.killAll?.();
  }
}

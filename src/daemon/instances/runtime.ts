/**
 * @module daemon/instances/runtime
 * What the daemon knows about an instance only while it lives: its VM, the
 * host ports QEMU forwards, and activity for the idle policy. The table is
 * shared by the lifecycle (service.ts), booting (boot.ts) and activity
 * accounting (activity.ts).
 */
import type { Vm } from "../../vmm/backend.ts";

/** Live state of one instance. */
export interface Runtime {
  vm: Vm | null;
  /** guest port -> host port forwarded by QEMU while the VM runs. */
  hostPorts: Map<number, number>;
  /** Open connections, exec streams and other activity holding the instance awake. */
  active: number;
  /** Last time activity started or ended (ms since the epoch). */
  lastActivity: number;
  /** Set while the daemon itself stops or deletes the VM, so its exit is not a crash. */
  expectingExit: boolean;
  /**
   * Whether the running VM was given a secret's value itself (not only
   * placeholders: api/egress-secrets.ts). Unknown (undefined) for a VM a
   * previous aegisd started: treated as raw, so it is never snapshotted.
   */
  rawSecrets?: boolean;
  /** Adopted paused from a previous daemon: its orphaned execs are ended when it is resumed (orphans.ts). */
  orphansPending?: boolean;
  /**
   * Guest ports known to accept connections in this instance's guest (the
   * router checks a port once per guest: routing.ts). Kept across a restore
   * of the instance's own snapshot, whose guest is the one snapshotted,
   * listeners included; emptied by every other boot (boot.ts).
   */
  readyPorts: Set<number>;
}

/** A fresh runtime. */
export function newRuntime(now = Date.now()): Runtime {
  return { vm: null, hostPorts: new Map(), active: 0, lastActivity: now, expectingExit: false, readyPorts: new Set() };
}

/** Runtimes by instance id, created on first use. */
export class Runtimes {
  private readonly byId = new Map<string, Runtime>();

  /** The runtime of `id`, created when it has none yet. */
  of(id: string): Runtime {
    let rt = this.byId.get(id);
    if (!rt) {
      rt = newRuntime();
      this.byId.set(id, rt);
    }
    return rt;
  }

  /** The runtime of `id` if it has one. */
  peek(id: string): Runtime | undefined {
    return this.byId.get(id);
  }

  /** Forget `id` (after a delete). */
  forget(id: string): void {
    this.byId.delete(id);
  }

  /** Every runtime. */
  entries(): IterableIterator<[string, Runtime]> {
    return this.byId.entries();
  }
}

/**
 * @module shim/sandbox
 * The CRI path: a Kubernetes pod is ONE VM, and the containers of the pod
 * run inside it, each chrooted into its own root filesystem.
 *
 * containerd's CRI plugin marks every container with annotations:
 * `io.kubernetes.cri.container-type` (`sandbox` for the pod's pause
 * container, `container` for the others) and `io.kubernetes.cri.sandbox-id`.
 * The shim's `start` groups by the sandbox id (as runc's v2 shim does), so
 * one shim process serves every task of the pod (shim/task-router.ts).
 *
 * Root filesystems (QEMU 7.2 cannot hot-plug a second virtiofs device, and
 * a VM per container would not be a pod): the pod VM boots from one
 * per-pod host directory `<sandbox bundle>/pod`, shared by one virtiofsd,
 * and the shim mounts each container's rootfs (its bundle's `rootfs`, the
 * snapshotter's overlay) at `pod/<container id>`; the guest runs the
 * container's processes chrooted into `<root>/<container id>`
 * (exec `root_subdir`, guest/harness/container-root.ts). For mounts made
 * after the VM booted to reach the running virtiofsd:
 *   - `pod` is a bind mount of itself made a *shared* mount (its own peer
 *     group), and virtiofsd's mount namespace is a *slave* copy
 *     (vmm/virtiofsd.ts), so new mounts under `pod` propagate into it;
 *   - each container's rootfs is bound read-only at a private staging
 *     point (`pod-stage/<id>`) first and then *moved* under `pod`: a bind
 *     made directly under the shared `pod` would propagate read-write
 *     before its read-only remount (remounts do not propagate), whereas a
 *     move propagates the mount as it is, read-only.
 * The sandbox container itself is one of these roots (its process, the
 * image's pause program, runs chrooted in `pod/<sandbox id>` and keeps the
 * pod alive until the sandbox task is killed). Deleting the sandbox task
 * deletes the VM and unmounts everything under the pod directory.
 *
 * Network: the sandbox spec's network namespace (the one CNI configured)
 * is passed to aegisd as the instance's `netns_path`.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import type { AegisdFront } from "./aegisd.ts";
import { unmountRootfs } from "./mounts.ts";
import type { VmShape } from "./pod-shape.ts";

/** CRI's annotation naming a container's role in its pod. */
export const CONTAINER_TYPE = "io.kubernetes.cri.container-type";
/** CRI's annotation naming a container's pod sandbox. */
export const SANDBOX_ID = "io.kubernetes.cri.sandbox-id";
/** The file in the sandbox bundle that names the pod VM (as task-service's INSTANCE_FILE). */
export const POD_INSTANCE_FILE = "aegis-instance";

/** What the shim reads from a bundle's config.json for grouping and the pod network. */
const PodFields = z.object({
  annotations: z.record(z.string(), z.string()).optional(),
  linux: z.object({ namespaces: z.array(z.object({ type: z.string(), path: z.string().optional() })).optional() }).optional(),
});

/** A container's place in a CRI pod (or none). */
export type PodRole = { kind: "solo" } | { kind: "sandbox"; sandboxId: string; annotations: Record<string, string>; netnsPath?: string } | { kind: "container"; sandboxId: string };

/** The pod role of the bundle whose config.json text is `json` (solo for anything not from CRI). */
export function podRole(json: string, id: string): PodRole {
  const parsed = PodFields.safeParse(JSON.parse(json));
  if (!parsed.success) return { kind: "solo" };
  const a = parsed.data.annotations ?? {};
  const type = a[CONTAINER_TYPE];
  if (type === "sandbox") {
    const netns = parsed.data.linux?.namespaces?.find((n) => n.type === "network")?.path;
    return { kind: "sandbox", sandboxId: a[SANDBOX_ID] ?? id, annotations: a, ...(netns ? { netnsPath: netns } : {}) };
  }
  if (type === "container" && a[SANDBOX_ID]) return { kind: "container", sandboxId: a[SANDBOX_ID] };
  return { kind: "solo" };
}

/** The id a shim groups by for the bundle in `dir` (the `start` action): the sandbox id, else the task id. */
export function groupingId(dir: string, id: string): string {
  const file = join(dir, "config.json");
  if (!existsSync(file)) return id;
  const role = podRole(readFileSync(file, "utf8"), id);
  return role.kind === "solo" ? id : role.sandboxId;
}

async function mountCmd(argv: string[]): Promise<void> {
  const p = Bun.spawn(["mount", ...argv], { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  const [err, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`mount ${argv.join(" ")} failed (exit ${code}): ${err.trim()}`);
}

async function umount(target: string): Promise<void> {
  const p = Bun.spawn(["umount", target], { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  const [err, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`umount ${target} failed (exit ${code}): ${err.trim()}`);
}

/** The pod's host directories under the sandbox bundle. */
export function podDirs(sandboxBundle: string): { share: string; stage: string } {
  return { share: join(sandboxBundle, "pod"), stage: join(sandboxBundle, "pod-stage") };
}

/** Unmount and remove a pod's directories (sandbox delete, and `delete` after a crash); absent is fine. */
export async function removePodDirs(sandboxBundle: string): Promise<void> {
  const { share, stage } = podDirs(sandboxBundle);
  for (const dir of [share, stage]) {
    await unmountRootfs(dir);
    if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
  }
}

/** One pod: its VM and the container roots under its shared directory. */
export class PodVm {
  instanceId: string | null = null;
  private readonly share: string;
  private readonly stage: string;
  private readonly roots = new Set<string>();

  constructor(
    private readonly front: AegisdFront,
    readonly sandboxId: string,
    private readonly sandboxBundle: string,
    private readonly log: (msg: string) => void,
    /** The VM's size (shim/pod-shape.ts): fixed at boot, containers must fit in it. */
    readonly shape: VmShape = {},
  ) {
    ({ share: this.share, stage: this.stage } = podDirs(sandboxBundle));
  }

  /** Make the shared pod directory and the private staging point, mount the sandbox's rootfs, boot the VM. */
  async boot(sandboxRootfs: string, netnsPath: string | undefined): Promise<string> {
    try {
      for (const dir of [this.share, this.stage]) {
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        await mountCmd(["--bind", dir, dir]);
        await mountCmd(["--make-private", dir]);
      }
      await mountCmd(["--make-shared", this.share]);
      await this.front.ensureRunning();
      const inst = await this.front.createInstance(this.share, { ...this.shape, ...(netnsPath ? { netns_path: netnsPath } : {}) });
      this.instanceId = inst.id;
      writeFileSync(join(this.sandboxBundle, POD_INSTANCE_FILE), inst.id);
      // After the boot, like every container's: one path (a mount that propagates into virtiofsd's
      // slave namespace) for every root of the pod, whatever virtiofsd's own bind of the share copies.
      await this.addRoot(this.sandboxId, sandboxRootfs);
      this.log(`pod ${this.sandboxId}: instance ${inst.id} booted from ${this.share}${netnsPath ? ` in network namespace ${netnsPath}` : ""}`);
      return inst.id;
    } catch (err) {
      await this.destroy().catch((e: unknown) => this.log(`pod ${this.sandboxId}: cleanup after a failed boot: ${(e as Error).message}`));
      throw err;
    }
  }

  /** Put container `id`'s mounted rootfs at `pod/<id>`, read-only (see the module notes). */
  async addRoot(id: string, rootfs: string): Promise<void> {
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(id)) throw new Error(`container id ${JSON.stringify(id)} cannot name a directory of the pod`);
    if (this.roots.has(id)) throw new Error(`container ${id} already has a root in pod ${this.sandboxId}`);
    const staged = join(this.stage, id);
    const target = join(this.share, id);
    mkdirSync(staged, { recursive: true });
    mkdirSync(target, { recursive: true });
    await mountCmd(["--bind", rootfs, staged]);
    try {
      await mountCmd(["-o", "remount,bind,ro", staged]);
      await mountCmd(["--move", staged, target]);
    } catch (err) {
      await umount(staged);
      throw err;
    }
    rmSync(staged, { recursive: true, force: true });
    this.roots.add(id);
  }

  /** Unmount container `id`'s root from the pod directory. */
  async removeRoot(id: string): Promise<void> {
    if (!this.roots.delete(id)) return;
    const target = join(this.share, id);
    await unmountRootfs(target);
    rmSync(target, { recursive: true, force: true });
  }

  /** Delete the VM, then unmount and remove the pod's directories. */
  async destroy(): Promise<void> {
    if (this.instanceId) {
      await this.front.deleteInstance(this.instanceId);
      rmSync(join(this.sandboxBundle, POD_INSTANCE_FILE), { force: true });
      this.instanceId = null;
    }
    this.roots.clear();
    await removePodDirs(this.sandboxBundle);
  }
}

/** Where a task's processes run when it is not a VM of its own (a member of a pod). */
export interface TaskPlacement {
  /** Place task `id`, whose rootfs is mounted at `rootfs`: the instance its processes run in and their root subdirectory. */
  place(id: string, rootfs: string): Promise<{ instanceId: string; rootSubdir: string }>;
  /** Undo `place` (for the sandbox: the whole pod VM goes). */
  release(id: string): Promise<void>;
}

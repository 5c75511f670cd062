/**
 * @module shim/task-service
 * containerd's task v2 service (`containerd.task.v2.Task`) for one
 * container: one aegisd instance (the VM) booted from the bundle's rootfs,
 * its init process and its execs (shim/process.ts).
 *
 *   - Create mounts containerd's rootfs mounts at `<bundle>/rootfs` (as
 *     runc does), boots the VM through aegisd (`rootfs_dir`), and records
 *     the instance id in `<bundle>/aegis-instance` so `delete` can clean up
 *     after a crashed shim;
 *   - Start runs the init process (or an exec) through an exec session;
 *   - Kill signals it, Wait blocks until its exit, Delete of the init stops
 *     and deletes the VM and unmounts the rootfs;
 *   - Pause/Resume are the instance's pause and resume (the whole VM is
 *     frozen, including execs, as a cgroup freezer would);
 *   - Stats samples the guest (stats.ts); Update accepts only what leaves
 *     the VM's boot shape as it is (update.ts); Checkpoint answers
 *     Unimplemented: snapshots of a virtiofs rootfs cannot be taken on
 *     QEMU 7.2;
 *   - the spec's bind mounts are made below the rootfs before boot
 *     (bind-mounts.ts).
 *
 * A task of a CRI pod (`deps.placement`, shim/sandbox.ts) does not boot a
 * VM of its own: the sandbox boots the pod VM, the pod's containers run in
 * it, and every process is chrooted into the task's directory of the pod's
 * rootfs (`rootSubdir`).
 *
 * Pids: the guest's pids are not host pids, so every process reports the
 * shim's own pid (what Kata does with its shim); Pids lists the init only.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { AegisdFront } from "./aegisd.ts";
import type { EventPublisher } from "./events.ts";
import { bindPlans, mountBinds, unmountBinds, type BindPlan } from "./bind-mounts.ts";
import { mountRootfs, unmountRootfs, type RootfsMount } from "./mounts.ts";
import { type GuestProcessSpec, guestProcess, OciProcess, OciSpec, parseSpec, vmShape } from "./oci-spec.ts";
import { ShimProcess, Status } from "./process.ts";
import type { TaskPlacement } from "./sandbox.ts";
import { statsResponse, type InstanceStats, type SpecLimits } from "./stats.ts";
import { checkUpdate } from "./update.ts";
import { timestamp, type Msg } from "./proto/index.ts";
import { Code, TtrpcError, type Method, type Services } from "./ttrpc.ts";

/** The file in the bundle that names the task's aegisd instance. */
export const INSTANCE_FILE = "aegis-instance";

const TASK = "containerd.task.v2.";
const EMPTY = "google.protobuf.Empty";

/** What the service needs from its process. */
export interface TaskServiceDeps {
  front: AegisdFront;
  events: EventPublisher;
  log: (msg: string) => void;
  /** Called after Shutdown has been answered: the shim exits. */
  shutdown: () => void;
  /** A task of a CRI pod runs in the pod's VM (shim/sandbox.ts), not in a VM of its own. */
  placement?: TaskPlacement;
}

function str(v: unknown): string {
  return typeof v === "string" ? v : "";
}

/** The task service of one shim. */
export class TaskService {
  private containerId = "";
  private bundle = "";
  private instanceId: string | null = null;
  /** The directory of the VM's rootfs the processes are chrooted into (a pod member), or none. */
  private rootSubdir: string | undefined;
  private init: ShimProcess | null = null;
  private readonly execs = new Map<string, ShimProcess>();
  private paused = false;
  private mounted = false;
  private binds: string[] = [];
  private shape: { memory_mb?: number; vcpus?: number } = {};
  private limits: SpecLimits = {};
  private lastStats: InstanceStats | null = null;

  constructor(private readonly deps: TaskServiceDeps) {}

  /** The ttrpc service table. */
  services(): Services {
    const m = new Map<string, Method>();
    const add = (name: string, request: string, response: string, handle: (req: Msg) => Promise<Msg>) => m.set(name, { request: TASK + request, response: response.includes(".") ? response : TASK + response, handle });
    add("Create", "CreateTaskRequest", "CreateTaskResponse", (r) => this.create(r));
    add("Start", "StartRequest", "StartResponse", (r) => this.start(r));
    add("State", "StateRequest", "StateResponse", async (r) => this.state(r));
    add("Wait", "WaitRequest", "WaitResponse", (r) => this.wait(r));
    add("Kill", "KillRequest", EMPTY, async (r) => this.kill(r));
    add("Delete", "DeleteRequest", "DeleteResponse", (r) => this.delete(r));
    add("Pids", "PidsRequest", "PidsResponse", async () => ({ processes: this.init ? [{ pid: this.init.pid }] : [] }));
    add("Pause", "PauseRequest", EMPTY, () => this.pause(true));
    add("Resume", "ResumeRequest", EMPTY, () => this.pause(false));
    add("Exec", "ExecProcessRequest", EMPTY, (r) => this.exec(r));
    add("ResizePty", "ResizePtyRequest", EMPTY, async (r) => (this.proc(r).resize(Number(r.width), Number(r.height)), {}));
    add("CloseIO", "CloseIORequest", EMPTY, async (r) => (r.stdin ? this.proc(r).closeStdin() : undefined, {}));
    add("Connect", "ConnectRequest", "ConnectResponse", async () => ({ shim_pid: process.pid, task_pid: this.init?.pid ?? 0, version: "aegis" }));
    add("Shutdown", "ShutdownRequest", EMPTY, async (r) => this.shutdownTask(r));
    add("Stats", "StatsRequest", "StatsResponse", (r) => this.stats(r));
    add("Update", "UpdateTaskRequest", EMPTY, async (r) => (this.proc(r), checkUpdate(((r.resources as Msg | null)?.value as Uint8Array | undefined) ?? new Uint8Array(), this.shape), {}));
    add("Checkpoint", "CheckpointTaskRequest", EMPTY, async () => {
      throw new TtrpcError(Code.unimplemented, "Checkpoint is not implemented by the aegis runtime (a VM booted from a virtiofs rootfs cannot be snapshotted on QEMU 7.2)");
    });
    return new Map([["containerd.task.v2.Task", m]]);
  }

  private proc(req: Msg): ShimProcess {
    if (this.containerId && str(req.id) !== this.containerId) throw new TtrpcError(Code.notFound, `task ${str(req.id)} not found (this shim serves ${this.containerId})`);
    const execId = str(req.exec_id);
    const p = execId ? this.execs.get(execId) : this.init;
    if (!p) throw new TtrpcError(Code.notFound, execId ? `exec ${execId} not found in task ${this.containerId}` : `task ${str(req.id)} not created`);
    return p;
  }

  private async create(req: Msg): Promise<Msg> {
    if (this.init) throw new TtrpcError(Code.alreadyExists, `task ${this.containerId} already exists`);
    if (str(req.checkpoint)) throw new TtrpcError(Code.unimplemented, "restoring a checkpoint is not implemented by the aegis runtime");
    const id = str(req.id);
    const bundle = str(req.bundle);
    let spec: OciSpec;
    try {
      spec = parseSpec(OciSpec, readFileSync(join(bundle, "config.json"), "utf8"), `${bundle}/config.json`);
    } catch (err) {
      throw new TtrpcError(Code.invalidArgument, (err as Error).message);
    }
    this.containerId = id;
    this.bundle = bundle;
    const rootfs = join(bundle, "rootfs");
    const mounts = req.rootfs as RootfsMount[];
    if (mounts.length > 0) {
      await mountRootfs(mounts, rootfs);
      this.mounted = true;
    }
    let binds: BindPlan[] = [];
    try {
      binds = bindPlans(spec.mounts ?? []);
      this.binds = await mountBinds(binds, rootfs);
    } catch (err) {
      if (this.mounted) await unmountRootfs(rootfs);
      this.mounted = false;
      throw new TtrpcError(Code.invalidArgument, `task ${id}: ${(err as Error).message}`);
    }
    this.shape = vmShape(spec);
    this.limits = { memoryBytes: spec.linux?.resources?.memory?.limit, pids: spec.linux?.resources?.pids?.limit };
    try {
      if (this.deps.placement) {
        ({ instanceId: this.instanceId, rootSubdir: this.rootSubdir } = await this.deps.placement.place(id, rootfs));
      } else {
        await this.deps.front.ensureRunning();
        const inst = await this.deps.front.createInstance(rootfs, this.shape);
        this.instanceId = inst.id;
        writeFileSync(join(bundle, INSTANCE_FILE), inst.id);
      }
      // In a pod VM the guest sees this container's root at <share>/<rootSubdir>.
      const inGuest = (dest: string) => (this.rootSubdir ? `/${this.rootSubdir}${dest.startsWith("/") ? "" : "/"}${dest}` : dest);
      for (const b of binds) if (b.remount.includes("ro")) await this.deps.front.readOnly(this.instanceId!, inGuest(b.destination));
    } catch (err) {
      if (this.instanceId) await this.deps.front.deleteInstance(this.instanceId).catch(() => {});
      rmSync(join(bundle, INSTANCE_FILE), { force: true });
      this.instanceId = null;
      await unmountBinds(this.binds, this.deps.log);
      this.binds = [];
      if (this.mounted) await unmountRootfs(rootfs);
      this.mounted = false;
      throw new TtrpcError(Code.unknown, `could not boot the VM of task ${id}: ${(err as Error).message}`);
    }
    const stdio = { stdin: str(req.stdin), stdout: str(req.stdout), stderr: str(req.stderr), terminal: req.terminal === true };
    this.init = new ShimProcess("", this.processSpec(spec.process), stdio, process.pid, this.deps.log);
    this.deps.log(`task ${id}: instance ${this.instanceId} booted`);
    await this.deps.events.publish("TaskCreate", { container_id: id, bundle, rootfs: mounts, io: stdio, pid: this.init.pid });
    return { pid: this.init.pid };
  }

  private async start(req: Msg): Promise<Msg> {
    const p = this.proc(req);
    if (p.state !== "created") throw new TtrpcError(Code.failedPrecondition, `process ${p.execId || this.containerId} is ${p.state}, not created`);
    const onExit = (done: ShimProcess) => {
      void this.deps.events.publish("TaskExit", { container_id: this.containerId, id: done.execId || this.containerId, pid: done.pid, exit_status: done.exit!.status, exited_at: timestamp(done.exit!.at) });
    };
    await p.start(this.deps.front, this.instanceId!, onExit);
    if (p.execId) await this.deps.events.publish("TaskExecStarted", { container_id: this.containerId, exec_id: p.execId, pid: p.pid });
    else await this.deps.events.publish("TaskStart", { container_id: this.containerId, pid: p.pid });
    return { pid: p.pid };
  }

  private state(req: Msg): Msg {
    const p = this.proc(req);
    const status = p.state === "stopped" ? Status.stopped : this.paused ? Status.paused : p.state === "running" ? Status.running : Status.created;
    return {
      id: p.execId || this.containerId,
      bundle: this.bundle,
      pid: p.pid,
      status,
      ...p.stdio,
      exit_status: p.exit?.status ?? 0,
      ...(p.exit ? { exited_at: timestamp(p.exit.at) } : {}),
      exec_id: p.execId,
    };
  }

  private async wait(req: Msg): Promise<Msg> {
    const exit = await this.proc(req).wait();
    return { exit_status: exit.status, exited_at: timestamp(exit.at) };
  }

  private kill(req: Msg): Msg {
    const p = this.proc(req);
    if (p.state !== "running") throw new TtrpcError(Code.notFound, `process ${p.execId || this.containerId} is not running`);
    p.kill(Number(req.signal));
    if (req.all === true && !p.execId) for (const e of this.execs.values()) if (e.state === "running") e.kill(Number(req.signal));
    return {};
  }

  private async exec(req: Msg): Promise<Msg> {
    this.proc({ id: req.id });
    const execId = str(req.exec_id);
    if (this.execs.has(execId)) throw new TtrpcError(Code.alreadyExists, `exec ${execId} already exists in task ${this.containerId}`);
    const anySpec = req.spec as Msg | null;
    let spec: OciProcess;
    try {
      spec = parseSpec(OciProcess, Buffer.from((anySpec?.value as Uint8Array | undefined) ?? []).toString("utf8"), `the process spec of exec ${execId}`);
    } catch (err) {
      throw new TtrpcError(Code.invalidArgument, (err as Error).message);
    }
    const stdio = { stdin: str(req.stdin), stdout: str(req.stdout), stderr: str(req.stderr), terminal: req.terminal === true };
    this.execs.set(execId, new ShimProcess(execId, this.processSpec(spec), stdio, process.pid, this.deps.log));
    await this.deps.events.publish("TaskExecAdded", { container_id: this.containerId, exec_id: execId });
    return {};
  }

  private async delete(req: Msg): Promise<Msg> {
    const p = this.proc(req);
    if (p.state === "running") throw new TtrpcError(Code.failedPrecondition, `process ${p.execId || this.containerId} is still running`);
    const exit = p.exit ?? { status: 0, at: Date.now() };
    if (p.execId) {
      this.execs.delete(p.execId);
      return { pid: p.pid, exit_status: exit.status, exited_at: timestamp(exit.at) };
    }
    await this.teardown();
    this.init = null;
    await this.deps.events.publish("TaskDelete", { container_id: this.containerId, pid: p.pid, exit_status: exit.status, exited_at: timestamp(exit.at), id: this.containerId });
    return { pid: p.pid, exit_status: exit.status, exited_at: timestamp(exit.at) };
  }

  private processSpec(p: OciProcess): GuestProcessSpec {
    return { ...guestProcess(p), ...(this.rootSubdir ? { rootSubdir: this.rootSubdir } : {}) };
  }

  /** Delete the VM and unmount the rootfs (also what `delete` does after a crash, see cleanup.ts). */
  private async teardown(): Promise<void> {
    if (this.instanceId && this.deps.placement) {
      await this.deps.placement.release(this.containerId);
      this.instanceId = null;
    } else if (this.instanceId) {
      await this.deps.front.deleteInstance(this.instanceId);
      rmSync(join(this.bundle, INSTANCE_FILE), { force: true });
      this.instanceId = null;
    }
    await unmountBinds(this.binds, this.deps.log);
    this.binds = [];
    if (this.mounted) {
      await unmountRootfs(join(this.bundle, "rootfs"));
      this.mounted = false;
    }
  }

  private async stats(req: Msg): Promise<Msg> {
    this.proc(req);
    if (!this.instanceId) throw new TtrpcError(Code.notFound, `task ${this.containerId} has no VM`);
    // A frozen VM's figures do not move: the last sample stands (the VM is never woken for stats).
    if (this.paused && this.lastStats) return statsResponse(this.lastStats, this.limits);
    if (this.paused) throw new TtrpcError(Code.failedPrecondition, `task ${this.containerId} is paused and has no stats sample yet: its VM is not woken for stats`);
    this.lastStats = await this.deps.front.stats(this.instanceId);
    return statsResponse(this.lastStats, this.limits);
  }

  private async pause(pause: boolean): Promise<Msg> {
    if (!this.instanceId || !this.init) throw new TtrpcError(Code.notFound, `task ${this.containerId} not created`);
    if (pause) await this.deps.front.pause(this.instanceId);
    else await this.deps.front.resume(this.instanceId);
    this.paused = pause;
    await this.deps.events.publish(pause ? "TaskPaused" : "TaskResumed", { container_id: this.containerId });
    return {};
  }

  private async shutdownTask(req: Msg): Promise<Msg> {
    const busy = this.init !== null && req.now !== true;
    if (busy) return {};
    if (this.init) await this.teardown();
    setTimeout(() => this.deps.shutdown(), 10);
    return {};
  }

  /** Whether the bundle still names a live instance (for logs). */
  hasInstance(): boolean {
    return this.instanceId !== null && existsSync(join(this.bundle, INSTANCE_FILE));
  }
}

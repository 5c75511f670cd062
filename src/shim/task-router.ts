/**
 * @module shim/task-router
 * One shim process serves every task of a CRI pod (the `start` action
 * groups by the sandbox id, shim/sandbox.ts), so the ttrpc task service
 * routes each request by its task `id` to that task's TaskService:
 *
 *   - Create makes the TaskService: a task outside any pod (plain `ctr
 *     run`) boots a VM of its own, the pod's sandbox boots the pod VM, a
 *     container of the pod is placed in the pod VM's rootfs;
 *   - every other request goes to the TaskService of its `id` (unknown:
 *     NotFound); Connect without a known id answers for the shim;
 *   - Shutdown ends the shim only once no task is left (what runc's
 *     grouped shim does), so the sandbox's shim outlives none of its tasks.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { AegisdFront } from "./aegisd.ts";
import type { EventPublisher } from "./events.ts";
import { OciSpec, parseSpec } from "./oci-spec.ts";
import { misfit, podShape } from "./pod-shape.ts";
import type { Msg } from "./proto/index.ts";
import { PodVm, podRole, type TaskPlacement } from "./sandbox.ts";
import { TaskService } from "./task-service.ts";
import { Code, TtrpcError, type Method, type Services } from "./ttrpc.ts";

const TASK_SERVICE = "containerd.task.v2.Task";

/** What the router needs from its process. */
export interface TaskRouterDeps {
  front: AegisdFront;
  events: EventPublisher;
  log: (msg: string) => void;
  /** Called once the last task is shut down: the shim exits. */
  shutdown: () => void;
}

/** The tasks of one shim, by id. */
export class TaskRouter {
  private readonly tasks = new Map<string, TaskService>();
  private readonly pods = new Map<string, PodVm>();
  /** Answers Connect before any task exists, and gives the method table. */
  private readonly template: TaskService;

  constructor(private readonly deps: TaskRouterDeps) {
    this.template = this.service(undefined, "");
  }

  /** The ttrpc service table. */
  services(): Services {
    const table = this.template.services().get(TASK_SERVICE)!;
    const routed = new Map<string, Method>();
    for (const [name, m] of table) {
      routed.set(name, { request: m.request, response: m.response, handle: (req, md) => this.route(name, req, md) });
    }
    return new Map([[TASK_SERVICE, routed]]);
  }

  private async route(name: string, req: Msg, md: Map<string, string>): Promise<Msg> {
    const id = typeof req.id === "string" ? req.id : "";
    if (name === "Create") return await this.create(req, md);
    const task = this.tasks.get(id);
    if (!task) {
      if (name === "Connect" || name === "Shutdown") return await this.handler(this.template, name)(req, md);
      throw new TtrpcError(Code.notFound, `task ${id} not found in this shim`);
    }
    return await this.handler(task, name)(req, md);
  }

  private readonly tables = new WeakMap<TaskService, Map<string, Method>>();

  private handler(task: TaskService, name: string): Method["handle"] {
    let table = this.tables.get(task);
    if (!table) this.tables.set(task, (table = task.services().get(TASK_SERVICE)!));
    return table.get(name)!.handle;
  }

  private async create(req: Msg, md: Map<string, string>): Promise<Msg> {
    const id = String(req.id ?? "");
    if (this.tasks.has(id)) throw new TtrpcError(Code.alreadyExists, `task ${id} already exists`);
    const bundle = String(req.bundle ?? "");
    let text: string;
    try {
      text = readFileSync(join(bundle, "config.json"), "utf8");
    } catch (err) {
      throw new TtrpcError(Code.invalidArgument, `cannot read ${bundle}/config.json: ${(err as Error).message}`);
    }
    const task = this.service(this.placement(id, bundle, text), id);
    this.tasks.set(id, task);
    try {
      return await this.handler(task, "Create")(req, md);
    } catch (err) {
      this.tasks.delete(id);
      throw err;
    }
  }

  /** Where task `id` runs, from its bundle's CRI annotations (none: a VM of its own). */
  private placement(id: string, bundle: string, configText: string): TaskPlacement | undefined {
    let role: ReturnType<typeof podRole>;
    try {
      role = podRole(configText, id);
    } catch (err) {
      throw new TtrpcError(Code.invalidArgument, `${bundle}/config.json is not valid JSON: ${(err as Error).message}`);
    }
    if (role.kind === "solo") return undefined;
    if (role.kind === "sandbox") {
      if (this.pods.has(role.sandboxId)) throw new TtrpcError(Code.alreadyExists, `pod ${role.sandboxId} already has a sandbox in this shim`);
      const spec = parseSpec(OciSpec, configText, `${bundle}/config.json`);
      let shape: ReturnType<typeof podShape>;
      try {
        shape = podShape(role.annotations, spec);
      } catch (err) {
        throw new TtrpcError(Code.invalidArgument, (err as Error).message);
      }
      const pod = new PodVm(this.deps.front, role.sandboxId, bundle, this.deps.log, shape);
      this.pods.set(role.sandboxId, pod);
      return {
        place: async (taskId, rootfs) => {
          try {
            return { instanceId: await pod.boot(rootfs, role.netnsPath), rootSubdir: taskId };
          } catch (err) {
            this.pods.delete(role.sandboxId);
            throw err;
          }
        },
        release: async () => {
          this.pods.delete(role.sandboxId);
          await pod.destroy();
        },
      };
    }
    const pod = this.pods.get(role.sandboxId);
    if (!pod?.instanceId) throw new TtrpcError(Code.failedPrecondition, `container ${id} belongs to pod ${role.sandboxId}, whose sandbox is not running in this shim`);
    const tooBig = misfit(id, parseSpec(OciSpec, configText, `${bundle}/config.json`), pod.shape);
    if (tooBig) throw new TtrpcError(Code.failedPrecondition, tooBig);
    return {
      place: async (taskId, rootfs) => {
        await pod.addRoot(taskId, rootfs);
        return { instanceId: pod.instanceId!, rootSubdir: taskId };
      },
      release: async (taskId) => await pod.removeRoot(taskId),
    };
  }

  private service(placement: TaskPlacement | undefined, id: string): TaskService {
    return new TaskService({
      front: this.deps.front,
      events: this.deps.events,
      log: this.deps.log,
      ...(placement ? { placement } : {}),
      shutdown: () => {
        if (id) this.tasks.delete(id);
        if (this.tasks.size === 0) this.deps.shutdown();
        else this.deps.log(`task ${id || "?"} shut down; ${this.tasks.size} task(s) left in this shim`);
      },
    });
  }
}

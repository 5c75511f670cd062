/**
 * @module daemon/tasks/service
 * Tasks: one command in a fresh VM, as `aegis run` without `--expose`.
 *
 * `create` validates everything that can be checked up front (the secrets
 * exist) and returns at once with the task `booting`; the VM work runs in the
 * background: boot, `run` the command as the guest's primary process (the
 * harness powers the VM off when it exits), stream its output into the log
 * store, record the exit code. A VM that dies first fails the task with its
 * exit code and the tail of its console log. Secrets travel only inside the
 * `run` request's env, over the control channel.
 */
import { readTail } from "../../control/file-ring.ts";
import { NotFound, PreconditionFailed } from "../../api/errors.ts";
import type { ImageRecord } from "../../api/schema/images.ts";
import type { Task, TaskCreate } from "../../api/schema/tasks.ts";
import type { SessionInput, TaskSessionStart, TtySize } from "../../api/schema/session.ts";
import type { Vm } from "../../vmm/backend.ts";
import { type AttachedProcess, attachGuestProcess, type GuestExit, type GuestProcess, startGuestProcess } from "../../vmm/guest-process.ts";
import type { SessionDriver, SessionSend } from "../api/sessions.ts";
import { isSpawnFailure } from "../instances/exec.ts";
import { feed } from "../instances/session.ts";
import { newId } from "../apps/service.ts";
import type { Logger } from "../api/deps.ts";
import type { LogStore } from "../logs/log-store.ts";
import type { TasksTable } from "../registry/tasks.ts";
import type { SecretsService } from "../secrets/service.ts";
import { withTrustEnv } from "../secrets/trust.ts";
import type { Substitution } from "../../api/egress-secrets.ts";
import { imageRunConfig, type ProcessSpec, resolveProcess } from "../images/process-spec.ts";
import type { ImagesService } from "../images/service.ts";
import type { VmLauncher } from "../vms.ts";

/** The process id of a task's command inside its VM. */
const MAIN = "main";
/** How long a VM may take to power off after its primary process exited. */
const POWEROFF_GRACE_MS = 10_000;
/** How long to wait for the VM process's exit code once its control channel closed. */
const LATE_EXIT_MS = 500;

const terminal = new Set(["succeeded", "failed", "cancelled"]);

/**
 * The informative end of a console log, for crash reports: from the last
 * "Kernel panic" line when there is one (the backtrace after it is noise),
 * else the last lines.
 */
export function consoleTail(path: string, lines = 15): string {
  // The tail only: the console may be megabytes (a guest can print as fast as it likes).
  const all = readTail(path).trimEnd().split("\n");
  const panic = all.findLastIndex((l) => l.includes("Kernel panic"));
  return (panic >= 0 ? all.slice(Math.max(0, panic - 2), panic + lines - 2) : all.slice(-lines)).join("\n");
}

/** The interactive end of a task started through a session (api/schema/session.ts). */
interface TaskSession {
  send: SessionSend;
  tty: TtySize | undefined;
  stdin: boolean;
  /** The main process once it runs; input before then waits in `pending`. */
  proc: GuestProcess | null;
  pending: SessionInput[];
}

interface Active {
  vm: Vm | null;
  cancelled: boolean;
  session?: TaskSession;
}

/** Task creation, execution and cancellation. */
export class TasksService {
  private readonly active = new Map<string, Active>();

  constructor(
    private readonly table: TasksTable,
    private readonly logs: LogStore,
    private readonly secrets: SecretsService,
    private readonly vms: VmLauncher,
    private readonly images: ImagesService,
    private readonly log: Logger,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  private now(): string {
    return this.clock().toISOString();
  }

  /**
   * Create a task and start it in the background. The image (pulled first
   * when missing; `aegis run` pulls with progress before it asks) and the
   * request resolve into the process here (process-spec.ts), so a bad
   * command or user is a 400 before any VM starts.
   */
  async create(input: TaskCreate, session?: TaskSession): Promise<Task> {
    const names = input.secrets.includes("*") ? "*" : input.secrets;
    // Substituted secrets reach the guest as placeholders (api/egress-secrets.ts), with the egress CA trusted.
    const plan = this.secrets.plan(names, undefined, input.env);
    const secretEnv = plan.env;
    const image = input.image ? await this.images.resolve(input.image) : null;
    const env = plan.substitutions.length > 0 ? withTrustEnv({ ...input.env, ...secretEnv }) : { ...input.env, ...secretEnv };
    const run = resolveProcess(image && { ref: image.ref, config: imageRunConfig(image) }, { ...input, env });
    const task: Task = {
      id: newId("task"),
      state: "booting",
      command: run.argv,
      image: input.image ?? null,
      exit_code: null,
      signal: null,
      error: null,
      created_at: this.now(),
      started_at: null,
      finished_at: null,
    };
    this.table.insert(task, session !== undefined);
    this.active.set(task.id, { vm: null, cancelled: false, session });
    this.log.info("task created", { task: task.id, secrets: Object.keys(secretEnv) });
    session?.send({ type: "task", id: task.id });
    void this.execute(task.id, input, image, run, plan.substitutions);
    return task;
  }

  /**
   * A task with stdin and/or a terminal (`aegis run -i/-t`): created like
   * {@link create} (output still goes to its log), its main process fed by
   * the session's messages, its end sent as `exit` (or `error` when it never
   * ran). Closing the session cancels the task.
   */
  async session(start: TaskSessionStart, send: SessionSend): Promise<SessionDriver> {
    const { type: _type, tty, stdin, ...input } = start;
    const session: TaskSession = { send, tty, stdin, proc: null, pending: [] };
    const task = await this.create(input, session);
    return {
      input: (msg) => {
        if (session.proc) feed(session.proc, msg, (err) => this.log.warn("session input failed", { task: task.id, error: String(err) }));
        else session.pending.push(msg);
      },
      abort: () => {
        if (this.active.has(task.id)) void this.cancel(task.id).catch((err: unknown) => this.log.warn("cancel after a closed session failed", { task: task.id, error: String(err) }));
      },
    };
  }

  /** A system note in the task's log, shown on the session's stderr too. */
  private note(id: string, text: string): void {
    this.logs.note(id, text);
    this.active.get(id)?.session?.send({ type: "output", stream: "stderr", data: Buffer.from(`${text}\n`).toString("base64") });
  }

  /** Recent tasks, newest first. */
  list(limit: number, state?: Task["state"]): Task[] {
    return this.table.list(limit, state);
  }

  /** A task by id; NotFound otherwise. */
  get(id: string): Task {
    const task = this.table.get(id);
    if (!task) throw new NotFound(`task "${id}" not found`);
    return task;
  }

  /** Cancel a task: its VM is killed at once. Cancelling a finished task is a PreconditionFailed. */
  async cancel(id: string): Promise<Task> {
    const task = this.get(id);
    const active = this.active.get(id);
    if (terminal.has(task.state) || !active) {
      throw new PreconditionFailed(`task ${id} already ${task.state}`, undefined, { current: task.state, required: ["booting", "running"] });
    }
    active.cancelled = true;
    if (active.vm) {
      active.vm.kill();
      await active.vm.exited;
    }
    this.finish(id, { state: "cancelled", error: "cancelled by the user" });
    return this.get(id);
  }

  /**
   * After a daemon restart (live restore): a task whose command was running
   * gets its VM re-adopted (its output then continues in its log from the
   * last seq the previous daemon handled, and its exit is recorded as
   * usual); a task that was still booting, an interactive one (its session
   * ended with the old daemon's connection), or one whose VM cannot be
   * adopted, is failed and its VM killed, saying so in aegisd's log and the
   * task's.
   */
  async reconcile(killStale: (pid: number) => void): Promise<void> {
    await Promise.all(
      this.table.inStates(["booting", "running"]).map(async (task) => {
        const row = this.vms.recorded(task.id);
        let why = task.state === "booting" ? "aegisd restarted while the task's VM was booting; run it again" : "aegisd stopped while the task ran";
        // An interactive session (-i/-t) ends with its connection, which ended with the previous daemon.
        if (task.interactive) why = "aegisd restarted during the interactive session (-i/-t), which ends with its connection; the task was stopped";
        else if (task.state === "running" && row) {
          try {
            await this.adoptTask(task.id, row);
            this.log.info("task re-adopted", { task: task.id, pid: row.rec.pid });
            return;
          } catch (err) {
            why = `aegisd restarted and could not re-adopt the task's VM: ${err instanceof Error ? err.message : String(err)}`;
          }
        }
        if (row) {
          const killed = this.vms.killRecorded(row);
          this.log.warn(killed ? "killed a task VM it could not re-adopt" : "task VM is gone", { task: task.id, pid: row.rec.pid, reason: why });
        } else if (task.vmm_pid) killStale(task.vmm_pid);
        this.logs.note(task.id, `aegis: ${why}`);
        this.table.update(task.id, { state: "failed", error: why, finished_at: this.now() });
        this.logs.markClosed(task.id);
      }),
    );
  }

  /** Take over a running task's VM from a previous daemon (see {@link reconcile}). */
  private async adoptTask(id: string, row: Parameters<VmLauncher["adopt"]>[0]): Promise<void> {
    const active: Active = { vm: null, cancelled: false };
    this.active.set(id, active);
    let main: AttachedProcess | undefined;
    try {
      const vm = await this.vms.adopt(row, (v) => {
        main = attachGuestProcess(v.channel, MAIN, { onStdout: (b) => this.output(id, "stdout", b), onStderr: (b) => this.output(id, "stderr", b), what: "the task's command" });
      });
      active.vm = vm;
      this.table.update(id, { vmm_pid: vm.pid });
      void this.superviseMain(id, vm, main!.exited);
    } catch (err) {
      main?.detach();
      this.active.delete(id);
      throw err;
    }
  }

  /**
   * Stop every task (daemon shutdown). With `keepVms` (an upgrade: SIGTERM or
   * `aegis down --keep-vms`), tasks whose command runs are left running in
   * their VMs for the next daemon to re-adopt; the others (booting,
   * interactive sessions, which end with their connection) are failed and
   * their VMs killed.
   */
  async shutdown(opts: { keepVms: boolean } = { keepVms: false }): Promise<void> {
    const exits: Promise<number>[] = [];
    for (const [id, a] of this.active) {
      if (opts.keepVms && a.vm && !a.session && this.table.get(id)?.state === "running") continue;
      a.cancelled = true;
      this.finish(id, { state: "failed", error: "aegisd stopped while the task ran" });
      // Only the tasks' own VMs: instances stop by their own policy (InstancesService.shutdown), after this.
      if (a.vm) {
        a.vm.kill();
        exits.push(a.vm.exited);
      }
    }
    await Promise.all(exits);
  }

  private finish(id: string, fields: { state: Task["state"]; exit_code?: number; signal?: string | null; error?: string | null }): void {
    const active = this.active.get(id);
    if (!active) return;
    this.active.delete(id);
    if (active.session) {
      const send = active.session.send;
      if (fields.exit_code !== undefined) send({ type: "exit", code: fields.exit_code, signal: fields.signal ?? null });
      else send({ type: "error", error: { code: fields.state === "cancelled" ? "cancelled" : "task_failed", message: `task ${id} ${fields.state}${fields.error ? `: ${fields.error}` : ""}` } });
    }
    this.table.update(id, { exit_code: null, signal: null, error: null, ...fields, finished_at: this.now() });
    this.logs.close(id);
    this.log.info("task finished", { task: id, state: fields.state, exit_code: fields.exit_code ?? null });
  }

  private output(id: string, stream: "stdout" | "stderr", bytes: Uint8Array): void {
    this.logs.append(id, stream, bytes);
    this.active.get(id)?.session?.send({ type: "output", stream, data: Buffer.from(bytes).toString("base64") });
  }

  private async execute(id: string, input: TaskCreate, image: ImageRecord | null, run: ProcessSpec, substitutions: Substitution[]): Promise<void> {
    const active = this.active.get(id)!;
    let vm: Vm | null = null;
    let mainExited: Promise<GuestExit> | undefined;
    try {
      vm = await this.vms.launch({ id, memoryMb: input.memory_mb, vcpus: input.vcpus, rootfs: image?.rootfs, network: input.network, substitutions });
      active.vm = vm;
      if (active.cancelled) {
        vm.kill();
        return;
      }
      this.table.update(id, { vmm_pid: vm.pid });
      const proc = await startGuestProcess(vm.channel, {
        id: MAIN,
        argv: run.argv,
        env: run.env,
        cwd: run.cwd ?? undefined,
        user: run.user ?? undefined,
        primary: true,
        stdin: active.session?.stdin,
        tty: active.session?.tty,
        onStdout: (bytes) => this.output(id, "stdout", bytes),
        onStderr: (bytes) => this.output(id, "stderr", bytes),
      });
      mainExited = proc.exited;
      if (active.session) {
        active.session.proc = proc;
        for (const msg of active.session.pending.splice(0)) feed(proc, msg, (err) => this.log.warn("session input failed", { task: id, error: String(err) }));
      }
      this.table.update(id, { state: "running", started_at: this.now() });
    } catch (err) {
      if (active.cancelled) return;
      const message = err instanceof Error ? err.message : String(err);
      if (!vm) {
        this.note(id, `aegis: could not start the task: ${message}`);
        this.finish(id, { state: "failed", error: `could not start the task: ${message.split("\n")[0]}` });
        return;
      }
      // The program could not be started (not found, unknown user): the user's mistake, reported as
      // `docker run` does (exit 127), without the guest console.
      if (isSpawnFailure(err)) {
        this.note(id, `aegis: ${err.message}`);
        this.finish(id, { state: "failed", exit_code: 127, error: err.message });
        vm.kill();
        return;
      }
      // Most failures after boot mean the VM died (the control channel closed); say so with its exit code.
      const code = await Promise.race([vm.exited, Bun.sleep(LATE_EXIT_MS).then(() => null)]);
      this.crashed(id, vm, code === null ? message : `the VM exited (code ${code}) before the command finished`);
      vm.kill();
      return;
    }
    await this.superviseMain(id, vm, mainExited!);
  }

  /** Wait for the task's command to end (or its VM to die) and record the result; then the VM powers off. */
  private async superviseMain(id: string, vm: Vm, exited: Promise<GuestExit>): Promise<void> {
    const active = this.active.get(id);
    if (!active) return;
    try {
      const result = await exited;
      if (active.cancelled) return;
      this.finish(id, { state: result.code === 0 ? "succeeded" : "failed", exit_code: result.code, signal: result.signal ?? null });
      await Promise.race([vm.exited, Bun.sleep(POWEROFF_GRACE_MS)]);
      vm.kill();
    } catch (err) {
      if (active.cancelled) return;
      const message = err instanceof Error ? err.message : String(err);
      const code = await Promise.race([vm.exited, Bun.sleep(LATE_EXIT_MS).then(() => null)]);
      this.crashed(id, vm, code === null ? message : `the VM exited (code ${code}) before the command finished`);
      vm.kill();
    }
  }

  private crashed(id: string, vm: Vm, why: string): void {
    const tail = consoleTail(vm.consoleLog);
    this.logs.note(id, `aegis: ${why}${tail ? `\n--- guest console (${vm.consoleLog}) ---\n${tail}` : ""}`);
    this.finish(id, { state: "failed", error: why });
  }
}

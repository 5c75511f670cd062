/**
 * @module daemon/registry/tasks
 * Rows of `tasks`.
 */
import type { Database } from "bun:sqlite";
import type { Task, TaskState } from "../../api/schema/tasks.ts";

type TaskRow = Omit<Task, "command"> & { command: string; vmm_pid: number | null; interactive: number };

/** Fields that change after creation. */
export type TaskUpdate = Partial<Pick<Task, "state" | "exit_code" | "signal" | "error" | "started_at" | "finished_at">> & {
  vmm_pid?: number | null;
};

/** Table access for tasks. */
export class TasksTable {
  constructor(private readonly db: Database) {}

  /** Insert a new task; `interactive`: a session (-i/-t), which a daemon restart ends (live restore). */
  insert(task: Task, interactive = false): void {
    this.db
      .query(
        `INSERT INTO tasks (id, state, command, image, exit_code, signal, error, vmm_pid, created_at, started_at, finished_at, interactive)
         VALUES ($id, $state, $command, $image, $exit_code, $signal, $error, NULL, $created_at, $started_at, $finished_at, $interactive)`,
      )
      .run({ ...task, command: JSON.stringify(task.command), interactive: interactive ? 1 : 0 });
  }

  /** Update some fields. */
  update(id: string, fields: TaskUpdate): void {
    const keys = Object.keys(fields) as (keyof TaskUpdate)[];
    if (keys.length === 0) return;
    const set = keys.map((k) => `${k} = $${k}`).join(", ");
    this.db.query(`UPDATE tasks SET ${set} WHERE id = $id`).run({ ...fields, id } as Record<string, string | number | null>);
  }

  /** One task, or null. */
  get(id: string): Task | null {
    const row = this.db.query(`SELECT * FROM tasks WHERE id = $id`).get({ id }) as TaskRow | null;
    return row ? hydrate(row) : null;
  }

  /** The most recent tasks, newest first, optionally in one state. */
  list(limit: number, state?: TaskState): Task[] {
    const rows = (
      state
        ? this.db.query(`SELECT * FROM tasks WHERE state = $state ORDER BY created_at DESC LIMIT $limit`).all({ state, limit })
        : this.db.query(`SELECT * FROM tasks ORDER BY created_at DESC LIMIT $limit`).all({ limit })
    ) as TaskRow[];
    return rows.map(hydrate);
  }

  /** Tasks in any of the given states, with their VMM pid and whether they are interactive (for reconciliation). */
  inStates(states: TaskState[]): (Task & { vmm_pid: number | null; interactive: boolean })[] {
    const rows = this.db.query(`SELECT * FROM tasks WHERE state IN (${states.map((s) => `'${s}'`).join(", ")})`).all() as TaskRow[];
    return rows.map((r) => ({ ...hydrate(r), vmm_pid: r.vmm_pid, interactive: r.interactive === 1 }));
  }
}

function hydrate(row: TaskRow): Task {
  const { vmm_pid: _pid, interactive: _interactive, ...rest } = row;
  return { ...rest, command: JSON.parse(row.command) as string[] };
}

/**
 * Live restore of an instance's runtime state kept in the registry: the
 * keepalive lease and the idle clock (activity.ts), the port forwards added
 * while a VM runs (vms table), and whether a task is an interactive session
 * (tasks table). Real SQLite registry (migrated like aegisd's), a second
 * InstanceActivity standing in for the next daemon.
 */
import { afterEach, describe, expect, it } from "bun:test";
import { Database } from "bun:sqlite";
import { migrate } from "../../../src/daemon/db.ts";
import { InstanceActivity, PERSIST_EVERY_MS } from "../../../src/daemon/instances/activity.ts";
import { Runtimes } from "../../../src/daemon/instances/runtime.ts";
import { InstancesTable, type InstanceRow } from "../../../src/daemon/registry/instances.ts";
import { TasksTable } from "../../../src/daemon/registry/tasks.ts";
import { VmsTable } from "../../../src/daemon/registry/vms.ts";
import type { VmSpec } from "../../../src/vmm/backend.ts";
import type { Task } from "../../../src/api/schema/tasks.ts";

const dbs: Database[] = [];
afterEach(() => {
  for (const db of dbs.splice(0)) db.close();
});

function registry(): Database {
  const db = new Database(":memory:");
  migrate(db);
  dbs.push(db);
  return db;
}

function instance(table: InstancesTable, id: string, over: Partial<InstanceRow> = {}): void {
  table.insert({
    id,
    handle: id,
    state: "running",
    spec: { command: ["sh"], expose: [] } as unknown as InstanceRow["spec"],
    exit_code: null,
    error: null,
    vmm_pid: 123,
    created_at: new Date().toISOString(),
    started_at: null,
    last_active_at: null,
    ...over,
  });
}

describe("keepalive leases across a daemon restart", () => {
  it("are recorded in the row and taken up by the next daemon, with the same deadline", () => {
    const table = new InstancesTable(registry());
    instance(table, "inst_a");
    const before = new InstanceActivity(new Runtimes(), table);
    const until = Date.now() + 600_000;
    before.setKeepalive("inst_a", until);
    expect(table.find("inst_a")!.keepalive_until).toBe(until);

    const after = new InstanceActivity(new Runtimes(), table);
    expect(after.busy("inst_a")).toBe(false); // nothing until the VM is re-adopted
    after.restore("inst_a", table.find("inst_a")!);
    expect(after.keepaliveUntil("inst_a")).toBe(until);
    expect(after.busy("inst_a")).toBe(true);
  });

  it("a released lease is released for the next daemon too, and an expired one is not taken up", () => {
    const table = new InstancesTable(registry());
    instance(table, "inst_a");
    instance(table, "inst_b");
    const before = new InstanceActivity(new Runtimes(), table);
    before.setKeepalive("inst_a", Date.now() + 60_000);
    before.setKeepalive("inst_a", null);
    before.setKeepalive("inst_b", Date.now() + 50);
    expect(table.find("inst_a")!.keepalive_until).toBeNull();
    const after = new InstanceActivity(new Runtimes(), table);
    const later = Date.now() + 1000;
    after.restore("inst_a", table.find("inst_a")!, later);
    after.restore("inst_b", table.find("inst_b")!, later);
    expect(after.busy("inst_a", later)).toBe(false);
    expect(after.busy("inst_b", later)).toBe(false);
  });
});

describe("the idle clock across a daemon restart", () => {
  it("runs on from the last recorded activity, counting the time no daemon ran", () => {
    const table = new InstancesTable(registry());
    instance(table, "inst_a", { started_at: new Date(Date.now() - 3_600_000).toISOString() });
    const before = new InstanceActivity(new Runtimes(), table);
    before.started("inst_a");
    before.ended("inst_a");
    const lastActive = Date.parse(table.find("inst_a")!.last_active_at!);
    expect(Math.abs(lastActive - Date.now())).toBeLessThan(1000);

    const after = new InstanceActivity(new Runtimes(), table);
    const now = lastActive + 45_000;
    after.restore("inst_a", table.find("inst_a")!, now);
    expect(after.idleSeconds("inst_a", now)).toBe(45);
  });

  it("starts from the instance's start when no activity was ever recorded, and from now when neither is known", () => {
    const table = new InstancesTable(registry());
    const started = Date.now() - 30_000;
    instance(table, "inst_a", { started_at: new Date(started).toISOString() });
    instance(table, "inst_b");
    const after = new InstanceActivity(new Runtimes(), table);
    const now = started + 30_000;
    after.restore("inst_a", table.find("inst_a")!, now);
    after.restore("inst_b", table.find("inst_b")!, now);
    expect(after.idleSeconds("inst_a", now)).toBe(30);
    expect(after.idleSeconds("inst_b", now)).toBe(0);
  });

  it("records moments of activity (tether frames, MCP requests) at most once per PERSIST_EVERY_MS", async () => {
    const table = new InstancesTable(registry());
    instance(table, "inst_a");
    const activity = new InstanceActivity(new Runtimes(), table);
    activity.touch("inst_a");
    const first = table.find("inst_a")!.last_active_at;
    expect(first).not.toBeNull();
    activity.touch("inst_a");
    expect(table.find("inst_a")!.last_active_at).toBe(first);
    await Bun.sleep(PERSIST_EVERY_MS + 20);
    activity.touch("inst_a");
    expect(Date.parse(table.find("inst_a")!.last_active_at!)).toBeGreaterThan(Date.parse(first!));
  });

  it("ignores an instance deleted while its activity ended", () => {
    const table = new InstancesTable(registry());
    const activity = new InstanceActivity(new Runtimes(), table);
    activity.started("gone");
    activity.ended("gone");
    activity.setKeepalive("gone", Date.now() + 1000);
    expect(table.find("gone")).toBeNull();
  });
});

describe("a VM's port forwards added at run time", () => {
  const spec = { id: "inst_a", runDir: "/x/instances/inst_a", memoryMb: 256, vcpus: 1, ports: [{ guestPort: 8080, hostPort: 40001 }], hostname: "inst_a" } as VmSpec;

  it("replace the recorded ports, the rest of the spec unchanged, so the next daemon re-adopts them", () => {
    const vms = new VmsTable(registry());
    vms.spawned({ id: "inst_a", pid: 10, startTime: "99", template: false }, spec);
    vms.setPorts("inst_a", [
      { guestPort: 8080, hostPort: 40001 },
      { guestPort: 9090, hostPort: 40002 },
    ]);
    const [row] = vms.all();
    expect(row!.spec).toEqual({ ...spec, ports: [{ guestPort: 8080, hostPort: 40001 }, { guestPort: 9090, hostPort: 40002 }] });
    vms.setPorts("inst_a", [{ guestPort: 9090, hostPort: 40002 }]);
    expect(vms.all()[0]!.spec.ports).toEqual([{ guestPort: 9090, hostPort: 40002 }]);
  });

  it("of a VM with no record change nothing", () => {
    const vms = new VmsTable(registry());
    vms.setPorts("inst_x", [{ guestPort: 1, hostPort: 2 }]);
    expect(vms.all()).toEqual([]);
  });
});

describe("interactive tasks", () => {
  it("are marked in the registry for the next daemon's reconcile, and the API's task does not show the mark", () => {
    const tasks = new TasksTable(registry());
    const task: Task = { id: "task_a", state: "running", command: ["sh"], image: null, exit_code: null, signal: null, error: null, created_at: "2026-12-02T00:00:00.000Z", started_at: null, finished_at: null };
    tasks.insert({ ...task }, true);
    tasks.insert({ ...task, id: "task_b" });
    const found = Object.fromEntries(tasks.inStates(["running"]).map((t) => [t.id, t.interactive]));
    expect(found).toEqual({ task_a: true, task_b: false });
    expect(tasks.get("task_a")).toEqual({ ...task });
  });
});

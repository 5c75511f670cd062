/**
 * ProcessTable.endUntracked (`processes.end_untracked`): after a daemon
 * re-adopts a VM, every `ends_with_client` process the host does not name is
 * ended (SIGTERM, then SIGKILL after the grace); primary, kept and
 * non-client-bound (E2B) ones run on.
 * Real processes, no rootfs (root undefined: argv runs directly).
 */
import { afterEach, describe, expect, it } from "bun:test";
import { ProcessTable, type ProcessSink } from "../../../../guest/harness/processes.ts";

type Exit = { code: number; signal?: string };

function table(): { procs: ProcessTable; exits: Map<string, Exit>; exited: (id: string) => Promise<Exit> } {
  const exits = new Map<string, Exit>();
  const waiters = new Map<string, (e: Exit) => void>();
  const sink: ProcessSink = {
    output: async () => {},
    exit: async (id, code, signal) => {
      const e = signal ? { code, signal } : { code };
      exits.set(id, e);
      waiters.get(id)?.(e);
    },
    primaryExited: () => {},
    own: () => {},
    disown: () => {},
  };
  const procs = new ProcessTable(undefined, sink);
  const exited = (id: string) => (exits.has(id) ? Promise.resolve(exits.get(id)!) : new Promise<Exit>((r) => waiters.set(id, r)));
  return { procs, exits, exited };
}

const alive: ProcessTable[] = [];
afterEach(() => {
  for (const t of alive.splice(0)) t.killAll();
});

const pidAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe("ProcessTable.endUntracked", () => {
  it("ends untracked execs (SIGTERM) and leaves primary and kept processes running", async () => {
    const { procs, exits, exited } = table();
    alive.push(procs);
    // A primary that claims to be client-bound is still never ended.
    procs.run({ id: "main", argv: ["sleep", "1000"], env: {}, primary: true, ends_with_client: true });
    procs.run({ id: "kept", argv: ["sleep", "1000"], env: {}, ends_with_client: true });
    // An E2B process outlives its streams by design: not client-bound.
    procs.run({ id: "e2b", argv: ["sleep", "1000"], env: {} });
    procs.run({ id: "orphan", argv: ["sh", "-c", "sleep 1000"], env: {}, ends_with_client: true });
    // A quiet one waiting on stdin, like `aegis instance exec -i -- cat`.
    procs.run({ id: "cat", argv: ["cat"], env: {}, stdin: true, ends_with_client: true });
    await Bun.sleep(100);
    const ended = procs.endUntracked(new Set(["kept"]), 5000);
    expect(ended.sort()).toEqual(["cat", "orphan"]);
    expect(await exited("orphan")).toEqual({ code: 143, signal: "SIGTERM" });
    expect(await exited("cat")).toEqual({ code: 143, signal: "SIGTERM" });
    await Bun.sleep(200);
    expect(exits.has("main")).toBe(false);
    expect(exits.has("kept")).toBe(false);
    expect(exits.has("e2b")).toBe(false);
    expect(procs.ids().sort()).toEqual(["e2b", "kept", "main"]);
  });

  it("kills a process group that ignores SIGTERM once the grace is over", async () => {
    const { procs, exited } = table();
    alive.push(procs);
    const { pid } = procs.run({ id: "stubborn", argv: ["sh", "-c", "trap '' TERM; sleep 1000 & wait; wait"], env: {}, ends_with_client: true });
    await Bun.sleep(150);
    const started = Date.now();
    expect(procs.endUntracked(new Set(), 300)).toEqual(["stubborn"]);
    expect(await exited("stubborn")).toEqual({ code: 137, signal: "SIGKILL" });
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(pidAlive(pid)).toBe(false);
  });

  it("with nothing untracked ends nothing", async () => {
    const { procs, exits } = table();
    alive.push(procs);
    procs.run({ id: "main", argv: ["sleep", "1000"], env: {}, primary: true });
    procs.run({ id: "x", argv: ["sleep", "1000"], env: {}, ends_with_client: true });
    await Bun.sleep(50);
    expect(procs.endUntracked(new Set(["x"]), 0)).toEqual([]);
    await Bun.sleep(200);
    expect(exits.size).toBe(0);
  });
});

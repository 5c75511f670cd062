import { describe, expect, it } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AegisdFront } from "../../../src/shim/aegisd.ts";
import { EventPublisher } from "../../../src/shim/events.ts";
import { TaskRouter } from "../../../src/shim/task-router.ts";
import { Code, TtrpcError } from "../../../src/shim/ttrpc.ts";

// Only the paths that refuse a request before any VM work: aegisd is never reached.
function router(onShutdown: () => void = () => undefined) {
  const home = mkdtempSync(join(tmpdir(), "router-"));
  const r = new TaskRouter({ front: new AegisdFront(home), events: new EventPublisher("", "k8s.io", () => undefined), log: () => undefined, shutdown: onShutdown });
  const task = r.services().get("containerd.task.v2.Task")!;
  const call = (name: string, req: Record<string, unknown>) => task.get(name)!.handle(req, new Map());
  return { call, home, cleanup: () => rmSync(home, { recursive: true, force: true }) };
}

async function code(p: Promise<unknown>): Promise<number> {
  try {
    await p;
  } catch (err) {
    return (err as TtrpcError).code;
  }
  throw new Error("expected a ttrpc error");
}

describe("the shim's task router", () => {
  it("answers NotFound for a task it does not serve", async () => {
    const r = router();
    try {
      expect(await code(r.call("State", { id: "nope" }))).toBe(Code.notFound);
      expect(await code(r.call("Kill", { id: "nope", signal: 9 }))).toBe(Code.notFound);
    } finally {
      r.cleanup();
    }
  });

  it("refuses a container whose pod sandbox this shim does not run", async () => {
    const r = router();
    const bundle = join(r.home, "c1");
    try {
      mkdirSync(bundle);
      writeFileSync(join(bundle, "config.json"), JSON.stringify({ process: { args: ["sh"] }, annotations: { "io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": "s1" } }));
      expect(await code(r.call("Create", { id: "c1", bundle, rootfs: [] }))).toBe(Code.failedPrecondition);
      // The refused task is not kept.
      expect(await code(r.call("State", { id: "c1" }))).toBe(Code.notFound);
    } finally {
      r.cleanup();
    }
  });

  it("shuts the shim down when Shutdown comes and no task is left", async () => {
    let down = 0;
    const r = router(() => down++);
    try {
      await r.call("Shutdown", { id: "gone" });
      await Bun.sleep(50);
      expect(down).toBe(1);
    } finally {
      r.cleanup();
    }
  });
});

/**
 * Slot claims across an aegisd restart (live restore): a new aegisd takes
 * over its home's claim only when the claiming aegisd is dead, zombies
 * included, and never another home's. Claims live in a temp dir
 * (AEGIS_NET_SLOTS_DIR); nothing here touches namespaces or nftables.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { reclaimSlot, recordSlotVm } from "../../../../src/vmm/network/netns.ts";

const dir = mkdtempSync(join(tmpdir(), "aegis-slots-"));
const prevDir = process.env.AEGIS_NET_SLOTS_DIR;

/** A pid that is dead: a child that exited (and was reaped). */
function deadPid(): number {
  const p = Bun.spawnSync(["true"]);
  return p.pid;
}

function claim(slot: number, body: unknown): void {
  writeFileSync(join(dir, `${slot}.json`), JSON.stringify(body));
}

let parent: Bun.Subprocess | undefined;
let zombiePid = 0;

beforeAll(async () => {
  process.env.AEGIS_NET_SLOTS_DIR = dir;
  // The background sleep exits after its parent exec-ed the long `sleep`, which never waits for it: a zombie.
  parent = Bun.spawn(["sh", "-c", "sleep 0.1 & echo $!; exec sleep 30"], { stdin: "ignore", stdout: "pipe", stderr: "ignore" });
  const reader = (parent.stdout as ReadableStream<Uint8Array>).getReader();
  zombiePid = Number(new TextDecoder().decode((await reader.read()).value).trim());
  reader.releaseLock();
});

afterAll(() => {
  if (prevDir === undefined) delete process.env.AEGIS_NET_SLOTS_DIR;
  else process.env.AEGIS_NET_SLOTS_DIR = prevDir;
  parent?.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

describe("reclaimSlot", () => {
  it("refuses a slot whose claim is gone", () => {
    expect(() => reclaimSlot(91, "/h")).toThrow("network slot 91 is no longer claimed");
  });

  it("refuses another home's claim and leaves it as it was", () => {
    claim(92, { pid: deadPid(), home: "/other" });
    const before = readFileSync(join(dir, "92.json"), "utf8");
    expect(() => reclaimSlot(92, "/h")).toThrow("network slot 92 is claimed by AEGIS_HOME /other, not /h");
    expect(readFileSync(join(dir, "92.json"), "utf8")).toBe(before);
  });

  it("refuses a claim whose aegisd still runs", () => {
    claim(93, { pid: process.ppid, home: "/h" });
    expect(() => reclaimSlot(93, "/h")).toThrow(`network slot 93 is held by the running process ${process.ppid}`);
  });

  it("counts a zombie holder as dead (an aegisd killed with SIGKILL, not yet reaped), then checks the namespace", async () => {
    for (let i = 0; i < 100 && !readFileSync(`/proc/${zombiePid}/stat`, "utf8").includes(") Z "); i++) await Bun.sleep(10);
    expect(readFileSync(`/proc/${zombiePid}/stat`, "utf8")).toContain(") Z ");
    claim(94, { pid: zombiePid, home: "/h" });
    // Past the holder check: what stops it now is the namespace, which this test never creates.
    expect(() => reclaimSlot(94, "/h")).toThrow("network namespace aegis-94 is gone");
  });

  it("recordSlotVm only writes a claim of this process", () => {
    claim(95, { pid: deadPid(), home: "/h" });
    recordSlotVm(95, process.pid);
    expect(JSON.parse(readFileSync(join(dir, "95.json"), "utf8")).vm).toBeUndefined();
    claim(96, { pid: process.pid, home: "/h" });
    recordSlotVm(96, process.pid);
    const vm = JSON.parse(readFileSync(join(dir, "96.json"), "utf8")).vm;
    expect(vm.pid).toBe(process.pid);
    expect(vm.startTime).toMatch(/^\d+$/);
  });
});

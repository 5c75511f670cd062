import { afterAll, expect, it } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { mappedFiles, newTemplateBuild, pruneTemplateBuilds, templateBuilds, templateMemoryFile } from "../../../src/vmm/template-builds.ts";

const dir = mkdtempSync(join(tmpdir(), "tbuilds-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function complete(b: { snap: string; ram: string }): void {
  for (const f of [b.snap, b.ram, `${b.snap}.json`]) writeFileSync(f, "x");
}

it("names every build apart, newest last in time and first in the list", async () => {
  const a = newTemplateBuild(dir, "k1");
  await Bun.sleep(3);
  const b = newTemplateBuild(dir, "k1");
  expect(a.snap).not.toBe(b.snap);
  expect(templateMemoryFile(a.snap)).toBe(a.ram);
  complete(a);
  complete(b);
  writeFileSync(newTemplateBuild(dir, "k1").ram + ".partial", "x"); // in progress: no metadata
  complete(newTemplateBuild(dir, "k2"));
  expect(templateBuilds(dir, "k1")).toEqual([b.snap, a.snap]);
});

it("prunes old builds of the key, except leased ones, in-progress ones and the current one", () => {
  const [cur, old] = templateBuilds(dir, "k1") as [string, string];
  expect(pruneTemplateBuilds(dir, "k1", cur, new Set([old]))).toEqual([]);
  expect(pruneTemplateBuilds(dir, "k1", cur, new Set())).toEqual([old]);
  expect(existsSync(templateMemoryFile(old)) || existsSync(old) || existsSync(`${old}.json`)).toBe(false);
  expect(existsSync(templateMemoryFile(cur))).toBe(true);
  expect(templateBuilds(dir, "k2")).toHaveLength(1);
});

it("keeps a build whose RAM file a process maps", async () => {
  const b = newTemplateBuild(dir, "k3");
  complete(b);
  writeFileSync(b.ram, Buffer.alloc(4096));
  const cur = newTemplateBuild(dir, "k3");
  complete(cur);
  // A process that maps the file (python's mmap), as a clone's QEMU does.
  const holder = Bun.spawn(["python3", "-c", `import mmap,sys,time\nf=open(${JSON.stringify(b.ram)},"rb")\nm=mmap.mmap(f.fileno(),0,prot=mmap.PROT_READ)\nprint("ok",flush=True)\ntime.sleep(30)`], { stdout: "pipe" });
  try {
    const reader = holder.stdout.getReader();
    await reader.read();
    expect(mappedFiles().has(b.ram)).toBe(true);
    expect(pruneTemplateBuilds(dir, "k3", cur.snap, new Set())).toEqual([]);
  } finally {
    holder.kill();
    await holder.exited;
  }
  expect(pruneTemplateBuilds(dir, "k3", cur.snap, new Set())).toEqual([b.snap]);
});

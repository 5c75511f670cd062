import { afterEach, describe, expect, it } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { acquireLock, tryLock } from "../../../src/daemon/images/lock.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function lockPath() {
  const d = mkdtempSync(join(tmpdir(), "aegis-lock-"));
  dirs.push(d);
  return join(d, "x.lock");
}

describe("lock file", () => {
  it("is exclusive while held and gone after release", () => {
    const p = lockPath();
    const release = tryLock(p);
    expect(release).not.toBeNull();
    expect(readFileSync(p, "utf8")).toBe(String(process.pid));
    expect(tryLock(p)).toBeNull();
    release!();
    expect(existsSync(p)).toBe(false);
  });
  it("takes over a lock whose owner process is dead", async () => {
    const p = lockPath();
    const dead = Bun.spawn(["true"]);
    await dead.exited;
    writeFileSync(p, String(dead.pid));
    const release = await acquireLock(p, () => false, 2000, 10);
    expect(release).not.toBeNull();
    expect(readFileSync(p, "utf8")).toBe(String(process.pid));
    release!();
  });
  it("stops waiting when the holder's result appears", async () => {
    const p = lockPath();
    const held = tryLock(p)!;
    let done = false;
    setTimeout(() => (done = true), 50);
    expect(await acquireLock(p, () => done, 2000, 10)).toBeNull();
    held();
  });
});

/**
 * A hostile guest and its workspace (issue 13, finding 1): guest root tries
 * to plant a setuid-root shell, device nodes for the host's disk and
 * symlinks to host secrets in /workspace. On the host, nothing in the
 * workspace may be root-owned and setuid/setgid, no device node may exist,
 * symlinks stay symlinks, and everything the guest made belongs to the
 * workspace owner (a throwaway uid for a path workspace; nobody for a named
 * workspace of a root-owned AEGIS_HOME).
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { chownSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, type Stats } from "node:fs";
import { join } from "node:path";
import { TestHome } from "../helpers/aegis.ts";

const TIMEOUT = 240_000;
const OWNER = 12345;
let home: TestHome;
let ws: string;

/** What guest root tries; each step may fail, the script always goes on. */
const ATTACK = [
  "cp /bin/busybox /workspace/rootshell; chmod 4755 /workspace/rootshell; chmod 6755 /workspace/rootshell",
  "mknod /workspace/disk b 8 0; mknod /workspace/mem c 1 1; chmod 666 /workspace/disk",
  "ln -s /etc/shadow /workspace/shadow",
  "mkdir /workspace/d; echo hi > /workspace/d/f; chown 0:0 /workspace/d/f; chown 1000:1000 /workspace/d/f; chmod 2755 /workspace/d",
  "touch /workspace/made-by-root",
  "ls -ln /workspace",
].join("; ");

/** lstat of every entry under `dir`, never following a link. */
function walk(dir: string): { path: string; st: Stats }[] {
  return (readdirSync(dir, { recursive: true }) as string[]).map((p) => ({ path: p, st: lstatSync(join(dir, p)) }));
}

/** The host-side checks every workspace must pass after the attack. */
function expectHarmless(dir: string, owner: number): void {
  const entries = walk(dir);
  expect(entries.map((e) => e.path)).toContain("made-by-root");
  for (const { path, st } of entries) {
    expect({ path, setidRoot: st.uid === 0 && (st.mode & 0o6000) !== 0 }).toEqual({ path, setidRoot: false });
    expect({ path, device: st.isBlockDevice() || st.isCharacterDevice() }).toEqual({ path, device: false });
    expect({ path, uid: st.uid }).toEqual({ path, uid: owner });
  }
  const link = lstatSync(join(dir, "shadow"));
  expect(link.isSymbolicLink()).toBe(true);
  expect(readlinkSync(join(dir, "shadow"))).toBe("/etc/shadow");
}

beforeAll(async () => {
  home = new TestHome();
  ws = join(home.dir, "ws");
  mkdirSync(ws);
  chownSync(ws, OWNER, OWNER);
  await home.ok(["up"]);
}, TIMEOUT);

afterAll(async () => {
  await home?.[Symbol.asyncDispose]();
}, 60_000);

describe("a hostile guest writing its workspace", () => {
  it("gives the host nothing but files of the workspace owner (path workspace)", async () => {
    const shadow = readFileSync("/etc/shadow");
    await home.ok(["instance", "start", "--name", "evil", "--workspace", ws, "--pause-after", "0", "--", "sleep", "100000"]);
    const r = await home.run(["exec", "evil", "--", "sh", "-c", ATTACK]);
    expect(r.stderr).toContain("mknod: /workspace/disk: Operation not permitted");
    expectHarmless(ws, OWNER);
    expect(lstatSync(join(ws, "d", "f")).gid).toBe(OWNER);
    expect(readFileSync("/etc/shadow")).toEqual(shadow);
    // The guest still uses its workspace normally: it reads back what it wrote.
    expect((await home.ok(["exec", "evil", "--", "cat", "/workspace/d/f"])).stdout).toBe("hi\n");
    await home.ok(["instance", "delete", "evil"]);
  }, TIMEOUT);

  it("squashes guest root to nobody in a named workspace of a root-owned AEGIS_HOME", async () => {
    expect(lstatSync(home.dir).uid).toBe(0);
    await home.ok(["instance", "start", "--name", "named", "--workspace", "notes", "--pause-after", "0", "--", "sh", "-c", ATTACK]);
    // The instance stops when its command exits; its log then holds the command's output and the exit note.
    let log = "";
    for (let i = 0; i < 120 && !log.includes("command exited"); i++) {
      await Bun.sleep(1000);
      const r = await home.ok(["logs", "named"]);
      log = r.stdout + r.stderr;
    }
    expect(log).toContain("made-by-root");
    const dir = join(home.dir, "data", "workspaces", "notes");
    expect(lstatSync(dir).uid).toBe(65534);
    expectHarmless(dir, 65534);
  }, TIMEOUT);
});

/**
 * `aegis cp` end to end against a real VM: directories and files both ways
 * with modes, mtimes and symlinks kept, tar streams on stdin/stdout, a
 * hostile guest's setuid files and device nodes neutralised on the host, and
 * paused and stopped instances woken for the copy.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TestHome } from "../helpers/aegis.ts";

const TIMEOUT = 180_000;
let home: TestHome;
let work: string;
const MTIME = new Date("2020-01-02T03:04:05Z");

beforeAll(async () => {
  home = new TestHome();
  work = mkdtempSync(join(tmpdir(), "aegis-cp-e2e-"));
  await home.ok(["up"]);
  await home.ok(["instance", "start", "--name", "box", "--pause-after", "0", "--", "sleep", "1000000"]);
}, TIMEOUT);

afterAll(async () => {
  await home?.[Symbol.asyncDispose]();
  rmSync(work, { recursive: true, force: true });
});

describe("aegis cp", () => {
  it("copies a directory in and back out with contents, modes, mtimes and symlinks", async () => {
    const src = join(work, "proj");
    mkdirSync(join(src, "sub"), { recursive: true });
    writeFileSync(join(src, "a.txt"), "alpha\n");
    writeFileSync(join(src, "sub", "run.sh"), "#!/bin/sh\necho run\n");
    chmodSync(join(src, "sub", "run.sh"), 0o750);
    symlinkSync("a.txt", join(src, "link"));
    utimesSync(join(src, "a.txt"), MTIME, MTIME);
    utimesSync(join(src, "sub", "run.sh"), MTIME, MTIME);
    await home.ok(["cp", src, "box:/root/"]);
    const inGuest = await home.ok(["exec", "box", "--", "sh", "-c", "cat /root/proj/a.txt; stat -c '%a %Y' /root/proj/sub/run.sh /root/proj/a.txt; readlink /root/proj/link"]);
    const secs = MTIME.getTime() / 1000;
    expect(inGuest.stdout).toBe(`alpha\n750 ${secs}\n644 ${secs}\na.txt\n`);
    const out = join(work, "out");
    mkdirSync(out);
    await home.ok(["cp", "box:/root/proj", out]);
    expect(readFileSync(join(out, "proj", "sub", "run.sh"), "utf8")).toBe("#!/bin/sh\necho run\n");
    expect(statSync(join(out, "proj", "sub", "run.sh")).mode & 0o777).toBe(0o750);
    expect(statSync(join(out, "proj", "a.txt")).mtime.getTime()).toBe(MTIME.getTime());
    expect(readlinkSync(join(out, "proj", "link"))).toBe("a.txt");
  }, TIMEOUT);

  it("copies single files under a new name and tar streams on stdin and stdout", async () => {
    writeFileSync(join(work, "note"), "a note\n");
    await home.ok(["cp", join(work, "note"), "box:/tmp/renamed"]);
    await home.ok(["cp", "box:/tmp/renamed", join(work, "back")]);
    expect(readFileSync(join(work, "back"), "utf8")).toBe("a note\n");
    const tar = Bun.spawnSync(["tar", "-C", work, "-cf", "-", "note"]).stdout;
    await home.ok(["cp", "-", "box:/root"], { stdin: tar });
    const listed = await home.run(["cp", "box:/root/note", "-"]);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toContain("a note\n");
    expect(listed.stdout.slice(0, 4)).toBe("note");
    const missing = await home.run(["cp", "box:/nope", join(work, "x")]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain("/nope: no such file or directory");
    expect(existsSync(join(work, "x"))).toBe(false);
  }, TIMEOUT);

  it("never brings a guest's setuid bits or device nodes to the host", async () => {
    await home.ok(["exec", "box", "--", "sh", "-c", "mkdir -p /evil && cp /bin/busybox /evil/suid && chmod 6755 /evil/suid && mknod /evil/disk b 8 0 && echo ok > /evil/plain"]);
    const out = join(work, "evil-out");
    mkdirSync(out);
    const r = await home.run(["cp", "box:/evil", out]);
    expect(r.code).toBe(0);
    expect(statSync(join(out, "evil", "suid")).mode & 0o7777).toBe(0o755);
    expect(existsSync(join(out, "evil", "disk"))).toBe(false);
    expect(readFileSync(join(out, "evil", "plain"), "utf8")).toBe("ok\n");
    expect(lstatSync(join(out, "evil")).isDirectory()).toBe(true);
  }, TIMEOUT);

  it("wakes a paused instance and boots a stopped one for the copy; the copy survives the stop", async () => {
    await home.ok(["instance", "pause", "box"]);
    await home.ok(["cp", "box:/tmp/renamed", join(work, "from-paused")]);
    expect(readFileSync(join(work, "from-paused"), "utf8")).toBe("a note\n");
    await home.ok(["instance", "stop", "box"]);
    await home.ok(["cp", join(work, "note"), "box:/root/after-stop"]);
    const info = JSON.parse((await home.ok(["instance", "list", "--json"])).stdout);
    expect(JSON.stringify(info)).toContain('"running"');
    const r = await home.ok(["exec", "box", "--", "cat", "/root/after-stop"]);
    expect(r.stdout).toBe("a note\n");
  }, TIMEOUT);
});

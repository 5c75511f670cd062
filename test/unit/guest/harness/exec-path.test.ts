import { afterAll, describe, expect, it } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findExecutable, resolveInRoot } from "../../../../guest/harness/exec-path.ts";

/** A small image tree: GNU-like /usr/bin/ls, dash as /bin/sh via a symlink chain, a non-executable file, a loop. */
const root = mkdtempSync(join(tmpdir(), "aegis-execpath-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
for (const d of ["usr/bin", "usr/local/bin", "bin", "etc/alternatives", "opt/app"]) mkdirSync(join(root, d), { recursive: true });
const exe = (p: string) => {
  writeFileSync(join(root, p), "#!/bin/true\n");
  chmodSync(join(root, p), 0o755);
};
exe("usr/bin/ls");
exe("usr/bin/dash");
exe("opt/app/tool");
writeFileSync(join(root, "usr/local/bin/ls"), "not executable");
// /bin/sh -> /etc/alternatives/sh (absolute: must be re-rooted) -> ../../usr/bin/dash (relative, climbing past the root is clamped)
symlinkSync("/etc/alternatives/sh", join(root, "bin/sh"));
symlinkSync("../../../../usr/bin/dash", join(root, "etc/alternatives/sh"));
symlinkSync("loop2", join(root, "usr/bin/loop1"));
symlinkSync("loop1", join(root, "usr/bin/loop2"));
// An absolute link that would leave the root on the host must stay inside it.
symlinkSync("/etc/shadow", join(root, "usr/bin/escape"));

describe("findExecutable", () => {
  const PATH = "/usr/local/bin:/usr/bin:/bin";
  it("finds the first executable regular file in PATH order, skipping non-executable ones", () => {
    expect(findExecutable(root, "ls", PATH, "/")).toBe("/usr/bin/ls");
  });
  it("follows symlinks inside the root (absolute targets re-rooted)", () => {
    expect(findExecutable(root, "sh", "/bin", "/")).toBe("/bin/sh");
    expect(resolveInRoot(root, "/bin/sh")).toBe(`${root}/usr/bin/dash`);
  });
  it("returns null when no PATH entry has the program, for loops and for links out of the root", () => {
    expect(findExecutable(root, "nosuch", PATH, "/")).toBeNull();
    expect(findExecutable(root, "loop1", PATH, "/")).toBeNull();
    expect(findExecutable(root, "escape", PATH, "/")).toBeNull();
    expect(findExecutable(root, "tool", PATH, "/")).toBeNull();
  });
  it("uses names with a slash as given and resolves relative PATH entries against the working directory", () => {
    expect(findExecutable(root, "./x", PATH, "/")).toBe("./x");
    expect(findExecutable(root, "tool", "app", "/opt")).toBe("/opt/app/tool");
    expect(findExecutable(root, "tool", ":/usr/bin", "/opt/app")).toBe("/opt/app/tool");
  });
});

/**
 * @module guest/harness/exec-path
 * `execvp` semantics inside the rootfs: a bare command name is looked up in
 * the process's PATH *of the image* (dir by dir, the first executable
 * regular file wins), symlinks followed as the chrooted process would see
 * them (absolute targets re-rooted, `..` stopping at the root). The harness
 * then starts the absolute path it found, so no helper binary ever shadows a
 * program of the image: busybox nsenter, which starts user processes, would
 * otherwise run its own applet for a bare name it also has (`sh`, `ls`,
 * `id`...). A name that contains a slash is used as given, like execvp.
 */
import { lstatSync, readlinkSync, statSync } from "node:fs";
import { posix } from "node:path";

/** Symlink hops before giving up (Linux's own limit). */
const MAX_LINKS = 40;

/**
 * The host path of `guestPath` inside `root`, every symlink on the way
 * resolved within `root`; null when a component is missing or links loop.
 */
export function resolveInRoot(root: string, guestPath: string): string | null {
  const pending = posix.normalize(`/${guestPath}`).split("/").filter(Boolean);
  const done: string[] = [];
  let hops = 0;
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === ".") continue;
    if (part === "..") {
      done.pop();
      continue;
    }
    const host = `${root}/${[...done, part].join("/")}`;
    let st;
    try {
      st = lstatSync(host);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT" || (err as NodeJS.ErrnoException).code === "ENOTDIR") return null;
      throw err;
    }
    if (!st.isSymbolicLink()) {
      done.push(part);
      continue;
    }
    if (++hops > MAX_LINKS) return null;
    const target = readlinkSync(host);
    if (target.startsWith("/")) done.length = 0;
    pending.unshift(...target.split("/").filter(Boolean));
  }
  return `${root}/${done.join("/")}`;
}

/** Whether `guestPath` is an executable regular file inside `root`. */
export function isExecutableIn(root: string, guestPath: string): boolean {
  const host = resolveInRoot(root, guestPath);
  if (host === null) return false;
  try {
    const st = statSync(host);
    return st.isFile() && (st.mode & 0o111) !== 0;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
}

/**
 * Find `name` the way execvp does in the chrooted process: a name with a
 * slash is returned unchanged; otherwise each PATH entry (empty = the
 * working directory) is tried in order. Returns the guest path, or null.
 */
export function findExecutable(root: string, name: string, path: string, cwd: string): string | null {
  if (name.includes("/")) return name;
  if (name === "") return null;
  for (const dir of path.split(":")) {
    const base = dir === "" ? cwd : posix.resolve(cwd, dir);
    const candidate = posix.join(base, name);
    if (isExecutableIn(root, candidate)) return candidate;
  }
  return null;
}

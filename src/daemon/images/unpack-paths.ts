/**
 * @module daemon/images/unpack-paths
 * Safe path handling for layer entries. Entry names are checked lexically
 * (no absolute paths, no `..`), then resolved component by component inside
 * the root: symlinks met on the way are followed as a chroot would (absolute
 * targets start at the root), and any walk that would leave the root is
 * refused. The final component is never followed, so writing a file over a
 * symlink replaces the link instead of writing through it.
 */
import { lstatSync, mkdirSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { UnpackRefused } from "./errors.ts";

const MAX_HOPS = 40;

/** Split an entry name into components; refuses absolute paths and `..`. */
export function entryParts(name: string, layer: string, role = "entry"): string[] {
  if (name.startsWith("/")) {
    throw new UnpackRefused("absolute-path", `layer ${layer}: ${role} "${name}" has an absolute path`, "layers must use paths relative to the image root; the image is refused");
  }
  const parts = name.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) {
    throw new UnpackRefused("dot-dot", `layer ${layer}: ${role} "${name}" contains a '..' component`, "a '..' could write outside the image root; the image is refused");
  }
  if (parts.some((p) => p.includes("\0"))) throw new UnpackRefused("bad-entry", `layer ${layer}: ${role} "${name}" contains a NUL byte`);
  return parts;
}

/** Called for every directory the resolver creates because a layer omitted it. */
export type OnImplicitDir = (key: string) => void;

/**
 * Resolve directory components inside `root`, following symlinks within the
 * root and creating missing directories. Returns the real path relative to
 * the root as components. Throws `symlink-escape` if the walk leaves the root.
 */
export function resolveDir(root: string, parts: string[], entryName: string, layer: string, onImplicit: OnImplicitDir): string[] {
  const real: string[] = [];
  const queue = [...parts];
  let hops = 0;
  const escape = () =>
    new UnpackRefused("symlink-escape", `layer ${layer}: entry "${entryName}" resolves through a symlink to a path outside the image root`, "symlinks in an image may not be used to write outside it; the image is refused");
  while (queue.length > 0) {
    const c = queue.shift()!;
    if (c === "" || c === ".") continue;
    if (c === "..") {
      if (real.length === 0) throw escape();
      real.pop();
      continue;
    }
    const p = join(root, ...real, c);
    let st: ReturnType<typeof lstatSync> | undefined;
    try {
      st = lstatSync(p);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    if (!st) {
      mkdirSync(p, { mode: 0o755 });
      real.push(c);
      onImplicit(real.join("/"));
    } else if (st.isDirectory()) {
      real.push(c);
    } else if (st.isSymbolicLink()) {
      if (++hops > MAX_HOPS) throw new UnpackRefused("symlink-escape", `layer ${layer}: entry "${entryName}" goes through more than ${MAX_HOPS} symlinks`);
      const target = readlinkSync(p);
      if (target.startsWith("/")) real.length = 0;
      queue.unshift(...target.split("/"));
    } else {
      throw new UnpackRefused("bad-entry", `layer ${layer}: entry "${entryName}" needs "${[...real, c].join("/")}" to be a directory, but it is a file`);
    }
  }
  return real;
}

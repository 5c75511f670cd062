/**
 * @module guest/harness/inject
 * Makes the Aegis binary runnable inside every user rootfs, whatever the
 * image: `/usr/bin/aegis-agent`, `/usr/bin/aegis-harness` and `/usr/bin/aegis-mcp-guest` (spec: kit
 * binaries are injected into OCI overlays and core binaries into every
 * overlay, so no image needs to ship them). The guest does not know which
 * kit an instance uses, and an unused bind mount costs nothing, so both are
 * injected into every rootfs (including the base one).
 *
 * How: each name is a read-only bind mount of the running binary (the
 * harness's own `process.execPath`, i.e. /tools/aegis on the read-only tools
 * disk) onto an empty file created in the overlay's upper layer. Nothing is
 * copied, and the binary's basename (argv[0]) selects the role
 * (src/main.ts). Bun finds its embedded code through /proc/self/exe, which
 * names the real file, so the binary is exec'd directly by its ELF
 * interpreter, never as `ld.so binary` (that would make /proc/self/exe the
 * loader). processes.ts starts a bare `aegis-agent` by its absolute path, so
 * an image PATH without /usr/bin does not matter.
 *
 * The binary is linked against glibc. When the image has no file at the
 * binary's ELF interpreter path (busybox-static, musl/Alpine, distroless
 * static), the initramfs's loader is bound there too, and so is every shared
 * library the harness itself has mapped (read from /proc/self/maps: exactly
 * what the loader loaded for this binary), each at the same path as in the
 * initramfs. The initramfs has no ld.so.cache, so the loader found them on
 * its default search path (e.g. /lib/x86_64-linux-gnu, which musl images do
 * not use), and the same loader finds them there in the chroot. A file the
 * image already has is never shadowed: an image that has the loader keeps
 * its own glibc (Bun needs glibc 2.17), and a library the image already has
 * at that path is left alone.
 *
 * Paths are resolved inside the root the way the chrooted loader sees them:
 * symlinks are followed with absolute targets re-rooted, so an image's
 * `/lib -> usr/lib` or `/lib64/ld-linux-x86-64.so.2 -> /lib/...` works and
 * nothing escapes into the initramfs; a symlink at `/usr/bin/aegis-agent`
 * itself is replaced rather than followed. A zero-length file counts as
 * missing: it is the mount point this module left in a persistent overlay on
 * an earlier boot (a real loader or library is never empty).
 *
 * Cost, measured under TCG with the busybox image (7 bind mounts, 14
 * mount(2) calls): ~18 ms on a cold boot, ~20-25 ms in the `setup` of a VM
 * restored from a template. The loader and library list is computed before
 * `ready` (see `selfDependencies`), so templates already hold it.
 */
import { closeSync, lstatSync, mkdirSync, openSync, readFileSync, readlinkSync, readSync, unlinkSync } from "node:fs";
import { posix } from "node:path";

/** Binaries injected into every rootfs, at `/usr/bin/<name>`. */
export const INJECTED_BINARIES = ["aegis-agent", "aegis-harness", "aegis-mcp-guest"] as const;

/** Where the injected binaries live inside the rootfs. */
export const INJECT_DIR = "/usr/bin";

/** One read-only bind mount: `source` (a path in the initramfs) onto `target` (a path inside the rootfs). */
export interface BindStep {
  source: string;
  target: string;
}

/** The ELF interpreter (PT_INTERP) of a 64-bit little-endian ELF header block, or undefined for a static binary. */
export function elfInterpreter(head: Uint8Array): string | undefined {
  const b = Buffer.from(head.buffer, head.byteOffset, head.length);
  if (b.length < 64 || b.readUInt32BE(0) !== 0x7f454c46) throw new Error("not an ELF file");
  if (b[4] !== 2 || b[5] !== 1) throw new Error("not a 64-bit little-endian ELF file");
  const phoff = Number(b.readBigUInt64LE(32));
  const phentsize = b.readUInt16LE(54);
  const phnum = b.readUInt16LE(56);
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (ph + 56 > b.length) throw new Error("ELF program headers lie beyond the bytes read");
    if (b.readUInt32LE(ph) !== 3) continue; // PT_INTERP
    const off = Number(b.readBigUInt64LE(ph + 8));
    const size = Number(b.readBigUInt64LE(ph + 32));
    if (off + size > b.length) throw new Error("ELF interpreter path lies beyond the bytes read");
    return b.toString("latin1", off, off + size).replace(/\0.*$/s, "");
  }
  return undefined;
}

/**
 * Shared libraries mapped into this process, from /proc/self/maps text:
 * absolute paths whose name looks like `*.so` or `*.so.N`, excluding
 * `exclude` (the loader, handled on its own), in first-seen order.
 */
export function mappedLibraries(maps: string, exclude: string[] = []): string[] {
  const out = new Set<string>();
  for (const line of maps.split("\n")) {
    // address perms offset dev inode pathname; the pathname is the 6th field and may be absent.
    const m = /^\S+\s+\S+\s+\S+\s+\S+\s+\d+\s+(\/\S.*)$/.exec(line);
    if (!m) continue;
    const path = m[1]!;
    if (path.endsWith(" (deleted)") || !/\.so(\.\d+)*$/.test(posix.basename(path))) continue;
    if (!exclude.includes(path)) out.add(path);
  }
  return [...out];
}

/** What lstat found at a path. */
export interface Found {
  type: "link" | "file" | "dir" | "other";
  size: number;
}

/** The filesystem calls {@link resolveInRoot} needs (injected in tests). */
export interface RootFs {
  /** lstat: what is at `path`, or undefined when it does not exist. */
  kind(path: string): Found | undefined;
  readlink(path: string): string;
}

/** Real filesystem access for {@link resolveInRoot}. Missing paths do not throw (exceptions are slow under TCG). */
export const realRootFs: RootFs = {
  kind(path) {
    let st;
    try {
      st = lstatSync(path, { throwIfNoEntry: false });
    } catch (err) {
      // A regular file used as a directory: nothing can exist below it.
      if ((err as NodeJS.ErrnoException).code === "ENOTDIR") return undefined;
      throw err;
    }
    if (!st) return undefined;
    return { type: st.isSymbolicLink() ? "link" : st.isFile() ? "file" : st.isDirectory() ? "dir" : "other", size: st.size };
  },
  readlink: (path) => readlinkSync(path),
};

/** A path resolved inside a root. */
export interface Resolved {
  /** Host path under the root. */
  path: string;
  /** What is there (a link only for the last component with `followLast: false`), or undefined when it does not exist. */
  found: Found | undefined;
  /** Whether its parent directory exists. */
  parentFound: boolean;
}

/**
 * Resolve `path` (absolute, as seen inside `root`) to a host path under
 * `root`, following symlinks the way a process chrooted at `root` would:
 * absolute link targets restart at `root`, `..` never climbs above it.
 * Components that do not exist are kept as they are (to be created). With
 * `followLast: false` a symlink in the last component is not followed.
 */
export function resolveInRoot(root: string, path: string, fs: RootFs = realRootFs, followLast = true): Resolved {
  const todo = path.split("/").filter((p) => p !== "" && p !== ".");
  const done: string[] = [];
  let found: Found | undefined = { type: "dir", size: 0 };
  let hops = 0;
  while (todo.length > 0) {
    const part = todo.shift()!;
    if (part === "..") {
      done.pop();
      continue;
    }
    const host = `${root}/${[...done, part].join("/")}`;
    found = fs.kind(host);
    if (!found) return { path: `${root}/${[...done, part, ...todo].join("/")}`, found: undefined, parentFound: todo.length === 0 };
    if (found.type !== "link" || (!followLast && todo.length === 0)) {
      done.push(part);
      continue;
    }
    if (++hops > 40) throw new Error(`too many symbolic links resolving ${path} in ${root}`);
    const target = fs.readlink(host);
    if (target.startsWith("/")) done.length = 0;
    todo.unshift(...target.split("/").filter((p) => p !== "" && p !== "."));
  }
  return { path: done.length === 0 ? root : `${root}/${done.join("/")}`, found, parentFound: true };
}

/** One read-only bind mount of the plan, with what the target needs first. */
export interface InjectStep extends BindStep {
  /** The target is a symlink: remove it (from the overlay) before creating the mount point. */
  unlink: boolean;
  /** The target file does not exist yet: create it (an empty mount point). */
  create: boolean;
  /** Its parent directory does not exist yet either. */
  createParent: boolean;
}

/** Whether the rootfs really has a file there (a zero-length file is our own placeholder). */
function realFile(r: Resolved): boolean {
  return r.found !== undefined && (r.found.type !== "file" || r.found.size > 0);
}

function step(source: string, r: Resolved): InjectStep {
  const link = r.found?.type === "link";
  return { source, target: r.path, unlink: link, create: link || r.found === undefined, createParent: !r.parentFound };
}

/**
 * The bind mounts that inject `binary` into `root` (targets are host paths,
 * already resolved inside the root): the binaries always; the loader and its
 * libraries only when the image has no file at `interpreter`, and then each
 * library only where the image has none.
 */
export function injectionPlan(root: string, binary: string, interpreter: string | undefined, libraries: string[], fs: RootFs = realRootFs): InjectStep[] {
  // A symlink the image has at /usr/bin/aegis-agent is replaced, not followed: following it would shadow its target.
  const steps = INJECTED_BINARIES.map((name) => step(binary, resolveInRoot(root, `${INJECT_DIR}/${name}`, fs, false)));
  if (!interpreter) return steps;
  const loader = resolveInRoot(root, interpreter, fs);
  if (realFile(loader)) return steps;
  steps.push(step(interpreter, loader));
  for (const lib of libraries) {
    const r = resolveInRoot(root, lib, fs);
    if (!realFile(r)) steps.push(step(lib, r));
  }
  return steps;
}

/** What this binary needs from the initramfs: its ELF interpreter and the libraries mapped into this process. */
export interface SelfDeps {
  interpreter: string | undefined;
  libraries: string[];
}

let selfDeps: SelfDeps | undefined;

/**
 * The running binary's loader and libraries, computed once and memoised.
 * The harness calls it before `ready`, so a template snapshot already holds
 * the answer and a restored VM's `setup` skips the work.
 */
export function selfDependencies(): SelfDeps {
  if (selfDeps) return selfDeps;
  const fd = openSync(process.execPath, "r");
  let interpreter: string | undefined;
  try {
    const head = Buffer.alloc(4096);
    interpreter = elfInterpreter(head.subarray(0, readSync(fd, head, 0, head.length, 0)));
  } finally {
    closeSync(fd);
  }
  const libraries = interpreter ? mappedLibraries(readFileSync("/proc/self/maps", "utf8"), [interpreter, process.execPath]) : [];
  selfDeps = { interpreter, libraries };
  return selfDeps;
}

/**
 * Inject the running binary (and, for images without glibc, its loader and
 * libraries) into the rootfs at `root`. Returns the steps done, for the log.
 * Errors name the target inside the root and the source.
 */
export async function injectBinaries(root: string): Promise<InjectStep[]> {
  const libc = await import("./libc.ts");
  const { interpreter, libraries } = selfDependencies();
  const steps = injectionPlan(root, process.execPath, interpreter, libraries);
  for (const s of steps) {
    try {
      if (s.createParent) mkdirSync(posix.dirname(s.target), { recursive: true });
      if (s.unlink) unlinkSync(s.target);
      if (s.create) closeSync(openSync(s.target, "a", 0o644));
      libc.bindReadOnly(s.source, s.target);
    } catch (err) {
      throw new Error(`inject ${s.target.slice(root.length)} (from ${s.source}): ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return steps;
}

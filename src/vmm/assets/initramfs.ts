/**
 * @module vmm/assets/initramfs
 * The small initramfs (~6.4 MB, stored uncompressed): busybox-static with its applet links,
 * the glibc files the harness binary links against (at the paths ldd
 * reports), the virtio modules in load order, and /init. The 100 MB harness
 * binary is NOT in here: it sits on the read-only tools disk, which the notes
 * measured as ~1 s faster to boot and half the RAM (demand paging beats
 * unpacking it into tmpfs).
 */
import { readFileSync } from "node:fs";
import { dirname } from "node:path";
import { writeCpio, type CpioEntry } from "./cpio.ts";
import { initScript } from "./init-script.ts";
import { run } from "./exec.ts";
import { type ModuleInfo } from "./modules.ts";

/** Inputs of the initramfs. */
export interface InitramfsInputs {
  busybox: { path: string; applets: string[] };
  /** Absolute paths of shared libraries (from ldd). */
  libraries: string[];
  /** Modules always loaded, in load order. */
  baseModules: ModuleInfo[];
  /** Modules loaded for a virtiofs workspace, in load order (after base). */
  workspaceModules: ModuleInfo[];
  /** Path of the harness inside the guest, on the tools disk. */
  harness: string;
}

async function moduleBytes(path: string): Promise<Uint8Array> {
  if (path.endsWith(".ko")) return readFileSync(path);
  if (path.endsWith(".gz")) return Bun.gunzipSync(readFileSync(path));
  const tool = path.endsWith(".xz") ? "xz" : "zstd";
  return Buffer.from(await run([tool, "-dc", path]), "latin1");
}

/** Build the archive entries (exported for tests). */
export async function initramfsEntries(inp: InitramfsInputs): Promise<CpioEntry[]> {
  const dirs = new Set<string>(["bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys", "tmp", "run", "mnt", "tools", "etc", "lib", "lib/modules"]);
  const entries: CpioEntry[] = [];
  const files: CpioEntry[] = [];
  files.push({ type: "file", path: "bin/busybox", data: readFileSync(inp.busybox.path), mode: 0o755 });
  for (const a of inp.busybox.applets) {
    files.push({ type: "symlink", path: a, target: "/bin/busybox" });
    addParents(dirs, a);
  }
  for (const lib of inp.libraries) {
    const rel = lib.replace(/^\/+/, "");
    // readFileSync follows symlinks: the real library content is stored under the name the loader asks for.
    files.push({ type: "file", path: rel, data: readFileSync(lib), mode: 0o755 });
    addParents(dirs, rel);
  }
  for (const m of [...inp.baseModules, ...inp.workspaceModules]) {
    files.push({ type: "file", path: `lib/modules/${m.name}.ko`, data: await moduleBytes(m.path) });
  }
  const init = initScript({ base: inp.baseModules.map((m) => m.name), workspace: inp.workspaceModules.map((m) => m.name), harness: inp.harness });
  files.push({ type: "file", path: "init", data: new TextEncoder().encode(init), mode: 0o755 });
  for (const d of [...dirs].sort()) entries.push({ type: "dir", path: d, mode: d === "tmp" ? 0o1777 : 0o755 });
  entries.push({ type: "char", path: "dev/console", major: 5, minor: 1 }, { type: "char", path: "dev/null", major: 1, minor: 3, mode: 0o666 });
  return [...entries, ...files];
}

function addParents(dirs: Set<string>, rel: string): void {
  for (let d = dirname(rel); d !== "." && d !== "/"; d = dirname(d)) dirs.add(d);
}

/**
 * Build the newc initramfs, uncompressed. Under TCG the guest kernel's gzip
 * inflate of the 6.4 MB archive (2.9 MB as gzip -6) is emulated code on the
 * boot path, while QEMU copies the raw file into guest RAM at host speed, so
 * the raw archive reaches /init sooner (measured with interleaved A/B boots,
 * see the cold-boot figures in the module doc of vmm/assets/index.ts). The
 * 3.5 MB it adds on disk is shared by every VM.
 */
export async function buildInitramfs(inp: InitramfsInputs): Promise<Uint8Array> {
  return writeCpio(await initramfsEntries(inp));
}

/**
 * @module vmm/assets
 * The guest-asset builder: kernel, initramfs, tools disk and base rootfs,
 * cached under `AEGIS_HOME/guest/<hash>/` where `hash` covers every input
 * (builder version, guest arch, the harness binary, the kernel image, the
 * selected modules, busybox and the glibc files). Any change gives a new
 * directory; an unchanged input set is a cache hit that costs a few stats
 * (the 100 MB binary's sha256 is memoised by path+size+mtime+inode).
 *
 * Concurrency: each build happens in a private temp directory that is
 * renamed into place at the end. rename(2) of a directory onto an existing
 * non-empty one fails, so when two processes race the loser discards its
 * copy and uses the winner's; readers only ever see complete directories
 * (the manifest is written before the rename).
 *
 * Layout of one asset directory:
 *   vmlinuz            the guest kernel (copied)
 *   initrd.cpio.gz     busybox + glibc + modules + /init
 *   tools.ext4         read-only; /aegis = the harness (this same binary)
 *   rootfs.ext4        the base busybox rootfs
 *   manifest.json      the GuestAssets record
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { isCompiled, selfExe, statePaths } from "../../paths.ts";
import { staticBusybox } from "./busybox.ts";
import { mkfsExt4 } from "./ext4.ts";
import { buildInitramfs } from "./initramfs.ts";
import { initScript } from "./init-script.ts";
import { packageSource } from "./debian-package.ts";
import { cacheBase, debArch, resolveKernel, type GuestArch } from "./kernel.ts";
import { sharedLibraries } from "./ldd.ts";
import { builtinModules, GUEST_MODULES, loadOrder, moduleLookup, type ModuleInfo } from "./modules.ts";
import { buildBaseRootfs } from "./rootfs.ts";

/** Bump when the builder's output changes for identical inputs. */
export const BUILDER_VERSION = "1";

/** Name of the harness binary on the tools disk (mounted at /tools in the guest). */
export const TOOLS_HARNESS = "/tools/aegis";

/** The built guest assets. */
export interface GuestAssets {
  kernel: string;
  initrd: string;
  toolsDisk: string;
  baseRootfs: string;
  kernelVersion: string;
  /** Content hash of all inputs; names the asset directory. */
  hash: string;
}

/** Options of `ensureGuestAssets`. */
export interface EnsureGuestAssetsOptions {
  /** Cache directory, normally `AEGIS_HOME/guest`. */
  dir: string;
  /** The compiled aegis executable to use as the harness. */
  binary: string;
  arch?: GuestArch;
  progress?: (msg: string) => void;
}

async function sha256File(path: string): Promise<string> {
  const h = new Bun.CryptoHasher("sha256");
  for await (const chunk of Bun.file(path).stream()) h.update(chunk);
  return h.digest("hex");
}

/** sha256 of a file, memoised in `<dir>/file-hashes.json` by path, size, mtime and inode. */
async function cachedSha256(dir: string, path: string): Promise<string> {
  const memo = join(dir, "file-hashes.json");
  const st = statSync(path);
  const key = `${path}:${st.size}:${st.mtimeMs}:${st.ino}`;
  let table: Record<string, string> = {};
  if (existsSync(memo)) table = JSON.parse(readFileSync(memo, "utf8")) as Record<string, string>;
  const hit = table[key];
  if (hit) return hit;
  const digest = await sha256File(path);
  table[key] = digest;
  const tmp = `${memo}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(table));
  renameSync(tmp, memo);
  return digest;
}

function hostArch(): GuestArch {
  return process.arch === "arm64" ? "aarch64" : "x86_64";
}

/**
 * Make sure the guest assets for `binary` exist under `dir`; build them when
 * missing. Safe to call concurrently from several processes.
 */
export async function ensureGuestAssets(opts: EnsureGuestAssetsOptions): Promise<GuestAssets> {
  const progress = opts.progress ?? (() => {});
  const arch = opts.arch ?? hostArch();
  if (!existsSync(opts.binary)) throw new Error(`harness binary ${opts.binary} does not exist\nhint: build it with \`bun run build.ts\``);
  mkdirSync(opts.dir, { recursive: true });

  // One package source for the kernel and busybox, so each suite's index is fetched once.
  const source = packageSource({ debArch: debArch(arch), cacheDir: cacheBase(), progress });
  const kernel = await resolveKernel({ dir: opts.dir, arch, progress, source });
  const lookup = kernel.modulesDir ? moduleLookup(kernel.modulesDir) : () => undefined;
  const builtin = kernel.modulesDir ? builtinModules(kernel.modulesDir) : new Set<string>();
  let baseModules: ModuleInfo[] = [];
  let workspaceModules: ModuleInfo[] = [];
  if (kernel.modulesDir) {
    baseModules = loadOrder([...GUEST_MODULES.base, ...GUEST_MODULES.net], lookup, builtin);
    const loaded = new Set([...builtin, ...baseModules.map((m) => m.name)]);
    workspaceModules = loadOrder(GUEST_MODULES.workspace, lookup, loaded);
  } else {
    progress(`kernel ${kernel.version} has no modules tree: assuming virtio, overlay and fuse are built in`);
  }
  const busybox = await staticBusybox({ arch, progress, source });
  const libraries = arch === hostArch() ? await sharedLibraries(opts.binary) : [];
  if (arch !== hostArch()) throw new Error(`building ${arch} guest assets on a ${hostArch()} host is not supported yet`);

  const h = new Bun.CryptoHasher("sha256");
  h.update(`aegis-guest-assets ${BUILDER_VERSION} ${arch}\n`);
  h.update(`binary ${await cachedSha256(opts.dir, opts.binary)}\n`);
  h.update(`kernel ${kernel.version} ${await cachedSha256(opts.dir, kernel.vmlinuz)}\n`);
  for (const m of [...baseModules, ...workspaceModules]) h.update(`module ${m.name} ${await cachedSha256(opts.dir, m.path)}\n`);
  h.update(`busybox ${await cachedSha256(opts.dir, busybox.path)}\n`);
  // modprobe looks in /lib/modules/$(uname -r): the modules tree's own name is the kernel's release.
  const release = kernel.modulesDir ? basename(kernel.modulesDir) : kernel.version;
  h.update(initScript({ base: baseModules.map((m) => m.name), workspace: workspaceModules.map((m) => m.name), harness: TOOLS_HARNESS, release }));
  for (const lib of libraries) h.update(`lib ${lib} ${await cachedSha256(opts.dir, lib)}\n`);
  const hash = h.digest("hex").slice(0, 24);
  const final = join(opts.dir, hash);
  const manifest = join(final, "manifest.json");
  const assetsAt = (d: string): GuestAssets => ({
    kernel: join(d, "vmlinuz"),
    initrd: join(d, "initrd.cpio.gz"),
    toolsDisk: join(d, "tools.ext4"),
    baseRootfs: join(d, "rootfs.ext4"),
    kernelVersion: kernel.version,
    hash,
  });
  if (existsSync(manifest)) return assetsAt(final);

  const tmp = join(opts.dir, `.build-${hash}-${process.pid}-${Date.now()}`);
  mkdirSync(tmp, { recursive: true });
  try {
    progress(`building guest assets ${hash} (kernel ${kernel.version})`);
    copyFileSync(kernel.vmlinuz, join(tmp, "vmlinuz"));
    progress(`initramfs: busybox, ${libraries.length} libraries, ${baseModules.length + workspaceModules.length} modules`);
    const initrd = await buildInitramfs({ busybox, libraries, baseModules, workspaceModules, harness: TOOLS_HARNESS, release });
    writeFileSync(join(tmp, "initrd.cpio.gz"), initrd);
    progress("tools disk (read-only ext4 with the harness)");
    const toolsDir = join(tmp, "tools-tree");
    mkdirSync(toolsDir);
    copyFileSync(opts.binary, join(toolsDir, "aegis"));
    await mkfsExt4(toolsDir, join(tmp, "tools.ext4"), { label: "aegis-tools" });
    rmSync(toolsDir, { recursive: true });
    progress("base rootfs (busybox ext4)");
    await buildBaseRootfs(join(tmp, "rootfs.ext4"), join(tmp, "rootfs-tree"), busybox);
    rmSync(join(tmp, "rootfs-tree"), { recursive: true });
    const result = assetsAt(final);
    writeFileSync(join(tmp, "manifest.json"), `${JSON.stringify({ ...result, kernelSource: kernel.source, builtAt: new Date().toISOString() }, null, 2)}\n`);
    try {
      renameSync(tmp, final);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "ENOTEMPTY" && code !== "EEXIST") throw err;
      progress("another process finished the same build first; using its copy");
    }
    progress(`guest assets ready in ${final}`);
    return result;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * Build the guest assets for AEGIS_HOME (default ~/.aegis) with `binary`
 * (default: this compiled executable) as the harness, reporting progress.
 * What `aegis setup` and `make setup` run.
 */
export async function runSetup(opts: { binary?: string; progress: (msg: string) => void }): Promise<GuestAssets> {
  const binary = opts.binary ?? (isCompiled ? selfExe : undefined);
  if (!binary) throw new Error("setup needs the compiled binary\nhint: run `bin/aegis setup`, or pass --binary bin/aegis");
  const t0 = performance.now();
  const assets = await ensureGuestAssets({ dir: statePaths().guest, binary, progress: opts.progress });
  opts.progress(`done in ${((performance.now() - t0) / 1000).toFixed(1)} s (kernel ${assets.kernelVersion}, assets ${assets.hash})`);
  return assets;
}

/**
 * `aegis __setup [--binary PATH]`, the older hidden spelling of
 * `aegis setup --json`: progress on stderr, the asset paths as JSON on stdout.
 */
export async function setupMain(argv: string[]): Promise<void> {
  const i = argv.indexOf("--binary");
  const assets = await runSetup({ binary: i >= 0 ? argv[i + 1] : undefined, progress: (msg) => process.stderr.write(`setup: ${msg}\n`) });
  process.stdout.write(`${JSON.stringify(assets, null, 2)}\n`);
}

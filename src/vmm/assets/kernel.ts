/**
 * @module vmm/assets/kernel
 * The guest kernel. Either `AEGIS_KERNEL=/path/vmlinuz` (with optional
 * `AEGIS_KERNEL_MODULES=/path/lib/modules/<ver>`), or Debian's cloud kernel:
 * we resolve the concrete package that the `linux-image-cloud-<arch>`
 * metapackage depends on, fetch its .deb (apt, or our verified HTTP fetch:
 * see {@link packageSource}) and unpack it ourselves into the cache. It is
 * never installed on the host. The unpacked tree stays under
 * `<kernelCacheDir()>/<package>/`, so later calls only re-run the (cheap)
 * resolution; when resolution fails (offline, no apt lists) the newest
 * cached kernel is used.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from "node:fs";
import { homedir } from "node:os";
import { basename, dirname, join } from "node:path";
import { moveTreeIntoPlace, unpackDeb } from "./deb.ts";
import { packageSource, type PackageSource } from "./debian-package.ts";

/** A resolved guest kernel. */
export interface KernelInfo {
  vmlinuz: string;
  /** `/lib/modules/<version>` tree, or undefined when the kernel has its drivers built in. */
  modulesDir?: string;
  version: string;
  /** Where it came from (package name or "AEGIS_KERNEL"). */
  source: string;
}

/**
 * Where downloaded kernels are unpacked: shared by every AEGIS_HOME of the
 * user (a kernel package is immutable by name), so a second home or a test
 * run never downloads it again. `AEGIS_CACHE` overrides the base
 * (default `$XDG_CACHE_HOME/aegis` or `~/.cache/aegis`).
 */
export function kernelCacheDir(env = process.env): string {
  return join(cacheBase(env), "kernels");
}

/** The user's Aegis download cache (`AEGIS_CACHE`, else `$XDG_CACHE_HOME/aegis` or `~/.cache/aegis`). */
export function cacheBase(env = process.env): string {
  return env.AEGIS_CACHE || join(env.XDG_CACHE_HOME || join(env.HOME || homedir(), ".cache"), "aegis");
}

/** Guest architectures we build for. */
export type GuestArch = "x86_64" | "aarch64";

/** Debian's name for a guest architecture. */
export function debArch(arch: GuestArch): string {
  return arch === "x86_64" ? "amd64" : "arm64";
}

function kernelFromTree(root: string, source: string): KernelInfo {
  const boot = join(root, "boot");
  const vmlinuz = readdirSync(boot).find((f) => f.startsWith("vmlinuz-"));
  if (!vmlinuz) throw new Error(`no vmlinuz-* in ${boot}`);
  const version = vmlinuz.slice("vmlinuz-".length);
  const modulesDir = join(root, "lib", "modules", version);
  return { vmlinuz: join(boot, vmlinuz), modulesDir: existsSync(modulesDir) ? modulesDir : undefined, version, source };
}

/** Resolve the guest kernel, downloading and unpacking Debian's cloud kernel when needed. */
export async function resolveKernel(opts: { dir: string; arch: GuestArch; progress: (msg: string) => void; source?: PackageSource }): Promise<KernelInfo> {
  const custom = process.env.AEGIS_KERNEL;
  if (custom) {
    if (!existsSync(custom)) throw new Error(`AEGIS_KERNEL=${custom} does not exist`);
    const version = basename(custom).replace(/^vmlinuz-?/, "") || "custom";
    const modulesDir = process.env.AEGIS_KERNEL_MODULES || (existsSync(`/lib/modules/${version}`) ? `/lib/modules/${version}` : undefined);
    if (modulesDir && !existsSync(modulesDir)) throw new Error(`AEGIS_KERNEL_MODULES=${modulesDir} does not exist`);
    return { vmlinuz: custom, modulesDir, version, source: "AEGIS_KERNEL" };
  }

  const kernels = kernelCacheDir();
  mkdirSync(kernels, { recursive: true });
  const meta = `linux-image-cloud-${debArch(opts.arch)}`;
  const source = opts.source ?? packageSource({ debArch: debArch(opts.arch), cacheDir: dirname(kernels), progress: opts.progress });
  let pkg: string;
  try {
    pkg = await source.dependencyOf(meta, "linux-image-");
  } catch (err) {
    const cached = readdirSync(kernels).filter((d) => d.startsWith("linux-image-") && d.endsWith(`-cloud-${debArch(opts.arch)}`)).sort().at(-1);
    if (cached) {
      opts.progress(`cannot resolve ${meta} (${err instanceof Error ? err.message.split("\n")[0] : String(err)}); using cached ${cached}`);
      return kernelFromTree(join(kernels, cached), cached);
    }
    const why = err instanceof Error ? err.message : String(err);
    throw new Error(`cannot resolve ${meta}: ${why}${why.includes("\nhint:") ? "" : "\nhint: check the network (AEGIS_DEBIAN_MIRROR), or set AEGIS_KERNEL=/path/to/vmlinuz"}`);
  }

  const tree = join(kernels, pkg);
  if (existsSync(join(tree, "boot"))) return kernelFromTree(tree, pkg);

  const located = await source.locate(pkg);
  const tmp = join(kernels, `.tmp-${pkg}-${process.pid}-${Date.now()}`);
  mkdirSync(join(tmp, "deb"), { recursive: true });
  try {
    // (The http source reports its own download progress.)
    if (source.kind === "apt") opts.progress(`downloading ${located.filename} (apt-get download)`);
    const deb = await located.fetch(join(tmp, "deb"));
    opts.progress(`unpacking ${basename(deb)}`);
    await unpackDeb(deb, join(tmp, "root"));
    renameSync(join(tmp, "deb"), join(tmp, "root", "deb"));
    moveTreeIntoPlace(join(tmp, "root"), tree);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return kernelFromTree(tree, pkg);
}

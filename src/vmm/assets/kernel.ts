/**
 * @module vmm/assets/kernel
 * The guest kernel. Either `AEGIS_KERNEL=/path/vmlinuz` (with optional
 * `AEGIS_KERNEL_MODULES=/path/lib/modules/<ver>`), or Debian's cloud kernel:
 * we resolve the concrete package that the `linux-image-cloud-<arch>`
 * metapackage depends on (`apt-cache depends`), fetch it with
 * `apt-get download` and unpack it with `dpkg-deb -x` into the cache. It is
 * never installed on the host. The unpacked tree stays under
 * `<kernelCacheDir()>/<package>/`, so later calls only re-run the (cheap)
 * apt-cache resolution; when apt-cache is unavailable the newest cached
 * kernel is used.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from "node:fs";
import { homedir } from "node:os";
import { basename, join } from "node:path";
import { run } from "./exec.ts";

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
  const base = env.AEGIS_CACHE || join(env.XDG_CACHE_HOME || join(env.HOME || homedir(), ".cache"), "aegis");
  return join(base, "kernels");
}

/** Guest architectures we build for. */
export type GuestArch = "x86_64" | "aarch64";

function debArch(arch: GuestArch): string {
  return arch === "x86_64" ? "amd64" : "arm64";
}

/** Parse `apt-cache depends <meta>` output into the concrete linux-image package name. */
export function parseAptDepends(text: string, arch: GuestArch): string | undefined {
  const re = new RegExp(`Depends:\\s*(linux-image-[0-9][^\\s:]*-cloud-${debArch(arch)})`);
  return text.match(re)?.[1];
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
export async function resolveKernel(opts: { dir: string; arch: GuestArch; progress: (msg: string) => void }): Promise<KernelInfo> {
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
  let pkg: string | undefined;
  try {
    pkg = parseAptDepends(await run(["apt-cache", "depends", meta]), opts.arch);
  } catch (err) {
    const cached = readdirSync(kernels).filter((d) => d.startsWith("linux-image-")).sort().at(-1);
    if (cached) {
      opts.progress(`apt-cache unavailable (${err instanceof Error ? err.message : String(err)}); using cached ${cached}`);
      return kernelFromTree(join(kernels, cached), cached);
    }
    throw new Error(`cannot resolve ${meta}: ${err instanceof Error ? err.message : String(err)}\nhint: on non-Debian hosts set AEGIS_KERNEL=/path/to/vmlinuz`);
  }
  if (!pkg) throw new Error(`apt-cache depends ${meta} names no linux-image package\nhint: run apt-get update, or set AEGIS_KERNEL=/path/to/vmlinuz`);

  const tree = join(kernels, pkg);
  if (existsSync(join(tree, "boot"))) return kernelFromTree(tree, pkg);

  opts.progress(`downloading ${pkg} (apt-get download)`);
  const tmp = join(kernels, `.tmp-${pkg}-${process.pid}-${Date.now()}`);
  mkdirSync(join(tmp, "deb"), { recursive: true });
  try {
    const archSuffix = opts.arch === "x86_64" && process.arch === "x64" ? "" : `:${debArch(opts.arch)}`;
    await run(["apt-get", "download", `${pkg}${archSuffix}`], { cwd: join(tmp, "deb") });
    const deb = readdirSync(join(tmp, "deb")).find((f) => f.endsWith(".deb"));
    if (!deb) throw new Error(`apt-get download ${pkg} produced no .deb`);
    opts.progress(`unpacking ${deb}`);
    await run(["dpkg-deb", "-x", join(tmp, "deb", deb), join(tmp, "root")]);
    renameSync(join(tmp, "deb"), join(tmp, "root", "deb"));
    try {
      renameSync(join(tmp, "root"), tree);
    } catch (err) {
      // Another process unpacked the same package first; theirs is identical.
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "ENOTEMPTY" && code !== "EEXIST") throw err;
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return kernelFromTree(tree, pkg);
}

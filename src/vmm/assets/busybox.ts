/**
 * @module vmm/assets/busybox
 * The static busybox shared by the initramfs (mount, insmod, ip, nsenter,
 * reboot for the harness) and the base rootfs. It must be statically linked:
 * the base rootfs has no libc at all. In order:
 * - `AEGIS_BUSYBOX=/path/to/busybox`;
 * - the host's `/bin/busybox` when it is static (Debian's busybox-static);
 * - Debian's `busybox-static` package for the guest architecture, fetched
 *   like the kernel ({@link packageSource}) and unpacked into
 *   `<cache>/busybox/<deb name>/` (also forced by `AEGIS_BUSYBOX=debian`,
 *   e.g. to not depend on what the host has installed).
 */
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { moveTreeIntoPlace, unpackDeb } from "./deb.ts";
import { packageSource, type PackageSource } from "./debian-package.ts";
import { run } from "./exec.ts";
import { cacheBase, debArch, type GuestArch } from "./kernel.ts";

/** True when the ELF file has a PT_INTERP program header (i.e. is dynamically linked). */
export function elfIsDynamic(bytes: Uint8Array): boolean {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  if (b.readUInt32BE(0) !== 0x7f454c46) throw new Error("not an ELF file");
  const is64 = b[4] === 2;
  const le = b[5] === 1;
  const u16 = (o: number) => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
  const u32 = (o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const phoff = is64 ? Number(le ? b.readBigUInt64LE(32) : b.readBigUInt64BE(32)) : u32(28);
  const phentsize = u16(is64 ? 54 : 42);
  const phnum = u16(is64 ? 56 : 44);
  for (let i = 0; i < phnum; i++) {
    if (u32(phoff + i * phentsize) === 3) return true;
  }
  return false;
}

function hostArch(): GuestArch {
  return process.arch === "arm64" ? "aarch64" : "x86_64";
}

/** Fetch and unpack Debian's busybox-static for `arch` into the cache; returns the binary's path. */
async function debianBusybox(arch: GuestArch, progress: (msg: string) => void, given?: PackageSource): Promise<string> {
  const cache = join(cacheBase(), "busybox");
  const source = given ?? packageSource({ debArch: debArch(arch), cacheDir: cacheBase(), progress });
  const located = await source.locate("busybox-static");
  const tree = join(cache, located.filename.replace(/\.deb$/, ""));
  const bin = join(tree, "bin", "busybox");
  if (existsSync(bin)) return bin;
  const tmp = join(cache, `.tmp-busybox-${process.pid}-${Date.now()}`);
  mkdirSync(join(tmp, "deb"), { recursive: true });
  try {
    const deb = await located.fetch(join(tmp, "deb"));
    progress(`unpacking ${located.filename}`);
    await unpackDeb(deb, join(tmp, "root"));
    if (!existsSync(join(tmp, "root", "bin", "busybox"))) throw new Error(`${located.filename} has no bin/busybox`);
    moveTreeIntoPlace(join(tmp, "root"), tree);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return bin;
}

/** Path and applet list (relative install paths such as `bin/sh`, `usr/bin/awk`) of the static busybox. */
export async function staticBusybox(opts: { arch?: GuestArch; progress?: (msg: string) => void; source?: PackageSource } = {}): Promise<{ path: string; applets: string[] }> {
  const arch = opts.arch ?? hostArch();
  const progress = opts.progress ?? (() => {});
  const override = process.env.AEGIS_BUSYBOX;
  let path: string;
  if (override && override !== "debian") {
    if (!existsSync(override)) throw new Error(`AEGIS_BUSYBOX=${override} does not exist`);
    path = override;
  } else {
    const host = override === "debian" || arch !== hostArch() ? undefined : ["/bin/busybox", "/usr/bin/busybox"].find((p) => existsSync(p) && !elfIsDynamic(readFileSync(p)));
    path = host ?? (await debianBusybox(arch, progress, opts.source));
  }
  if (elfIsDynamic(readFileSync(path))) {
    throw new Error(`${path} is dynamically linked; the guest needs a static busybox\nhint: apt-get install busybox-static, or unset AEGIS_BUSYBOX to fetch Debian's`);
  }
  // (Running it lists the applets: the guest arch is the host's, checked by the caller.)
  const list = await run([path, "--list-full"]);
  const applets = list.split("\n").map((l) => l.trim()).filter((l) => l && l !== "bin/busybox" && !l.includes(".."));
  return { path, applets };
}

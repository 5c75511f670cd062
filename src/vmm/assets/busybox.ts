/**
 * @module vmm/assets/busybox
 * The static busybox shared by the initramfs (mount, insmod, ip, nsenter,
 * reboot for the harness) and the base rootfs. `AEGIS_BUSYBOX` overrides the
 * host's `/bin/busybox` (e.g. for another guest architecture). It must be
 * statically linked: the base rootfs has no libc at all.
 */
import { existsSync, readFileSync } from "node:fs";
import { run } from "./exec.ts";

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

/** Path and applet list (relative install paths such as `bin/sh`, `usr/bin/awk`) of the static busybox. */
export async function staticBusybox(): Promise<{ path: string; applets: string[] }> {
  const path = process.env.AEGIS_BUSYBOX || ["/bin/busybox", "/usr/bin/busybox"].find((p) => existsSync(p));
  if (!path || !existsSync(path)) throw new Error("busybox not found\nhint: apt-get install busybox-static, or set AEGIS_BUSYBOX=/path/to/static/busybox");
  if (elfIsDynamic(readFileSync(path))) {
    throw new Error(`${path} is dynamically linked; the guest needs a static busybox\nhint: apt-get install busybox-static`);
  }
  const list = await run([path, "--list-full"]);
  const applets = list.split("\n").map((l) => l.trim()).filter((l) => l && l !== "bin/busybox" && !l.includes(".."));
  return { path, applets };
}

/**
 * @module vmm/assets/rootfs
 * The base rootfs used when a task names no `--image`: busybox-static with
 * its applet links and the minimum of /etc a shell user expects, as an ext4
 * image (mounted read-only in the guest under an overlay).
 */
import { chmodSync, copyFileSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { mkfsExt4 } from "./ext4.ts";

/** Lay out the base rootfs tree under `dir` (which must exist and be empty). */
export function layoutBaseRootfs(dir: string, busybox: { path: string; applets: string[] }): void {
  for (const d of ["bin", "sbin", "usr/bin", "usr/sbin", "etc", "dev", "proc", "sys", "run", "tmp", "var/tmp", "root", "home", "mnt", "workspace"]) {
    mkdirSync(join(dir, d), { recursive: true });
  }
  chmodSync(join(dir, "tmp"), 0o1777);
  chmodSync(join(dir, "var/tmp"), 0o1777);
  chmodSync(join(dir, "root"), 0o700);
  copyFileSync(busybox.path, join(dir, "bin/busybox"));
  chmodSync(join(dir, "bin/busybox"), 0o755);
  for (const a of busybox.applets) {
    const p = join(dir, a);
    mkdirSync(dirname(p), { recursive: true });
    symlinkSync(relative(dirname(p), join(dir, "bin/busybox")), p);
  }
  const etc = (name: string, text: string) => writeFileSync(join(dir, "etc", name), text);
  etc("passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n");
  etc("group", "root:x:0:\nnogroup:x:65534:\n");
  etc("shadow", "root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n");
  chmodSync(join(dir, "etc/shadow"), 0o600);
  etc("hosts", "127.0.0.1 localhost\n::1 localhost\n");
  etc("resolv.conf", "nameserver 10.0.2.3\n");
  etc("os-release", 'NAME="Aegis base"\nID=aegis\nPRETTY_NAME="Aegis base (busybox)"\n');
}

/** Build the base rootfs image at `out`, using `work` as a scratch directory. */
export async function buildBaseRootfs(out: string, work: string, busybox: { path: string; applets: string[] }): Promise<void> {
  mkdirSync(work, { recursive: true });
  layoutBaseRootfs(work, busybox);
  await mkfsExt4(work, out, { label: "aegis-root", extraMb: 16 });
}

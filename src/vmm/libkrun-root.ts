/**
 * @module vmm/libkrun-root
 * The guest root directory for libkrun (`krun_set_root`): libkrun boots its
 * own kernel (libkrunfw) and shares a host directory as `/` over virtio-fs,
 * injecting its `/init.krun`, which then execs `/tools/aegis __harness`.
 * That directory holds the same userland as our QEMU initramfs (busybox,
 * glibc and its loader, which the dynamically linked harness and its
 * bun:ffi calls need), so it is made by unpacking `initrd.cpio.gz` (newc)
 * and adding the harness binary at `tools/aegis`.
 *
 * Built once per guest-asset hash at `<assets dir>/krun-root`, in a private
 * temp directory renamed into place (a concurrent builder loses the rename
 * and uses the winner's). Device nodes in the archive are skipped (creating
 * them needs root; the guest kernel's devtmpfs provides /dev).
 */
import { chmodSync, copyFileSync, existsSync, mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join, normalize } from "node:path";
import type { GuestAssets } from "./assets/index.ts";
import { KRUN_HARNESS_PATH } from "./libkrun-config.ts";

/** One member of a newc archive, as read back. */
export interface CpioMember {
  path: string;
  mode: number;
  data: Uint8Array;
}

const decoder = new TextDecoder();

/** Parse a newc (`070701`) cpio archive. */
export function readCpio(archive: Uint8Array): CpioMember[] {
  const out: CpioMember[] = [];
  let off = 0;
  const field = (i: number): number => parseInt(decoder.decode(archive.subarray(off + 6 + i * 8, off + 14 + i * 8)), 16);
  for (;;) {
    if (off + 110 > archive.length) throw new Error(`cpio archive truncated at byte ${off}`);
    const magic = decoder.decode(archive.subarray(off, off + 6));
    if (magic !== "070701") throw new Error(`cpio archive: bad magic ${JSON.stringify(magic)} at byte ${off} (expected newc 070701)`);
    const mode = field(1);
    const size = field(6);
    const nameSize = field(11);
    const name = decoder.decode(archive.subarray(off + 110, off + 110 + nameSize - 1));
    const dataOff = off + 110 + nameSize + ((4 - ((110 + nameSize) % 4)) % 4);
    if (name === "TRAILER!!!") return out;
    out.push({ path: name, mode, data: archive.subarray(dataOff, dataOff + size) });
    off = dataOff + size + ((4 - (size % 4)) % 4);
  }
}

/** Unpack `members` under `dir` (regular files, directories, symlinks; device nodes skipped). */
export function unpackCpio(members: CpioMember[], dir: string): void {
  for (const m of members) {
    const rel = normalize(m.path).replace(/^\/+/, "");
    if (rel === "." || rel === "") continue;
    if (rel.startsWith("..")) throw new Error(`cpio member ${JSON.stringify(m.path)} escapes the target directory`);
    const target = join(dir, rel);
    const type = m.mode & 0o170000;
    mkdirSync(dirname(target), { recursive: true });
    if (type === 0o040000) mkdirSync(target, { recursive: true, mode: m.mode & 0o7777 });
    else if (type === 0o100000) {
      writeFileSync(target, m.data);
      chmodSync(target, m.mode & 0o7777);
    } else if (type === 0o120000) symlinkSync(decoder.decode(m.data), target);
    // character/block devices and fifos: skipped (see module comment)
  }
}

/** The libkrun root directory for `assets` with `harness` as `/tools/aegis`; built on first use. */
export async function ensureKrunRoot(assets: GuestAssets, harness: string): Promise<string> {
  const dir = join(dirname(assets.kernel), "krun-root");
  if (existsSync(join(dir, KRUN_HARNESS_PATH))) return dir;
  const tmp = `${dir}.${process.pid}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true, mode: 0o755 });
  try {
    const gz = new Uint8Array(await Bun.file(assets.initrd).arrayBuffer());
    unpackCpio(readCpio(Bun.gunzipSync(gz)), tmp);
    const tool = join(tmp, KRUN_HARNESS_PATH);
    mkdirSync(dirname(tool), { recursive: true });
    copyFileSync(harness, tool);
    chmodSync(tool, 0o755);
    renameSync(tmp, dir);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    // Lost a race to another builder: its complete directory is there now.
    if (existsSync(join(dir, KRUN_HARNESS_PATH))) return dir;
    throw err;
  }
  return dir;
}

/**
 * @module vmm/templates
 * Template snapshots for fast start (the E2B model, DESIGN.md section 8).
 *
 * A template is a memory snapshot of a VM that booted with NO per-instance
 * state: the harness ran with deferred setup (`aegis.defer=1`), so before
 * `ready` it only mounted /tmp and /run and configured eth0 (SLIRP addresses
 * are identical in every VM); the rootfs and overlay disks were attached
 * (QEMU needs the same devices at restore) but never mounted. It is taken
 * right after `ready`, once per key:
 *   (QEMU binary, accelerator, arch, guest assets hash, rootfs image stamp,
 *    memory, vCPUs, overlay disk size or none).
 * A new VM restores it with its OWN runDir, port forwards and overlay disk,
 * then gets the `setup` RPC: clock, host entropy + CRNG reseed (clones
 * would otherwise share the kernel RNG state), the cached blocks of its
 * disks dropped (the template's disk was probed at the same device), the
 * rootfs overlay mounted and the hostname set.
 *
 * Never in a template: secrets, env, user processes, workspace (virtiofs
 * cannot be migrated), hostnames. Files, one set per build (template-builds.ts):
 * `<dir>/<key>.<build>.snap` (the migration stream: device state only),
 * `<key>.<build>.ram` (the guest RAM) and the `.json` metadata
 * (snapshot-file.ts) with the stamps of both. The template's own
 * overlay disk and run directory are deleted once the snapshot is written.
 *
 * Memory. The template VM runs with its RAM in a shared file mapping on
 * tmpfs (/dev/shm; a disk file made its boot slow, see qemu.ts
 * stagingMemoryFile) and migrates with `x-ignore-shared`, so the snapshot
 * streams no RAM at all: the file already is the RAM. It is then copied
 * sparse to `<key>.ram` beside the snapshot (fsynced, before the metadata). A VM started from the template
 * maps that file privately (`share=off`, copy-on-write): no stream, no
 * decompression, pages fault in on first touch from the host page cache,
 * and the pages a clone only reads stay shared by every clone (density).
 * The file is never written after the snapshot (clones write their own
 * private copies; free-page reporting is not enabled for clones because
 * QEMU 7.2 would punch holes in the file when discarding pages), and a
 * rebuild writes a new build under a new name; the old one is removed once
 * no process maps it, so running and starting clones keep theirs.
 * A clone's own snapshot (idle stop) streams all its RAM as before.
 * Disk cost: the pages the template touched (~250 MB for 512 MB) instead
 * of an ~80 MB zstd file; it is a cache, rebuilt when missing.
 */
import type { FileStamp } from "./snapshot-file.ts";

/** Hostname the template VM boots with (replaced by the `setup` RPC). */
export const TEMPLATE_HOSTNAME = "aegis-template";

/** What selects a template. */
export interface TemplateKeyInput {
  qemuBinary: string;
  accel: string;
  arch: string;
  assetsHash: string;
  rootfs: FileStamp;
  memoryMb: number;
  vcpus: number;
  /** Size in MB of the overlay disk, or 0 when the VM has none (the guest caches the device size). */
  overlayMb: number;
}

/** The template key: a short hex digest of everything a restore must match. */
export function templateKey(k: TemplateKeyInput): string {
  const h = new Bun.CryptoHasher("sha256");
  h.update(
    JSON.stringify([3, k.qemuBinary, k.accel, k.arch, k.assetsHash, k.rootfs.path, k.rootfs.size, k.rootfs.mtimeNs, k.rootfs.ino, k.memoryMb, k.vcpus, k.overlayMb]),
  );
  return h.digest("hex").slice(0, 20);
}

/**
 * @module vmm/templates
 * Template snapshots for fast start (the E2B model, DESIGN.md section 8).
 *
 * A template is a memory snapshot of a VM that booted with NO per-instance
 * state: the harness ran with deferred setup (`aegis.defer=1`), so before
 * `ready` it did only what names no instance (guest/harness/setup.ts
 * setupTemplate): /tmp, /run and eth0 (SLIRP addresses are identical in
 * every VM), the read-only rootfs image mounted (the image is part of the
 * key, so every clone attaches the same file), and, when there is no
 * overlay disk (tasks: a tmpfs upper layer), the whole root assembled with
 * the Aegis binaries bound in, resolv.conf, /etc/hosts copied up and the MCP
 * bridge socket listening. The overlay disk (instances) was attached (QEMU
 * needs the same devices at restore) but never mounted. Then the harness
 * ran once the code every clone's `setup` and first process go through
 * (guest/harness/warm.ts: the request schemas, one `true` chrooted into
 * that root, one unix-socket server). It is taken right after `ready`, once
 * per key:
 *   (QEMU binary, accelerator, arch, guest assets hash, rootfs image stamp,
 *    memory, vCPUs, overlay disk size or none).
 * A new VM restores it with its OWN runDir, port forwards and overlay disk;
 * its first request is `setup` (no ping before it, qemu.ts restore): clock,
 * host entropy + CRNG reseed (clones would otherwise share the kernel RNG
 * state), the cached blocks of its overlay disk dropped (the template's
 * disk was probed at the same device), whatever of the rootfs overlay the
 * template could not mount, its hostname (kernel and /etc/hosts); then
 * `clock.set` again, since `setup`'s clock lagged by the time the request
 * waited for the resuming guest.
 *
 * What that bought (TCG, 2 cores shared with other helpers' VMs):
 * - backend level, `true` as a task from the template (bench/template-start.ts,
 *   6 runs each, back to back at load ~5; before = main's host code and
 *   harness), ms since QEMU spawn: resumed 78 -> 89, first ping 218 -> none,
 *   `setup` answered 600 -> 325 (its own round trip 382 -> 236; the guest
 *   handler 271 -> 72), clock.set 333, first process (run -> exit)
 *   563 -> 223; spawn -> `true` exited 1165 -> 591. At load 7-10, 8 A/B
 *   pairs against the previous harness: 2745 -> 1461 (pair median 0.50);
 * - `aegis run -- true` end to end, a daemon of main against one of this
 *   change, 10 pairs with the bare boot of bench/_baseline.ts in the same
 *   loop (load ~5): 1677 -> 687 ms (pair median 0.41), over the bare boot
 *   (3230 ms) 0.52x -> 0.21x; at load ~10: 2304 -> 661 ms, 0.67x -> 0.19x.
 * Under TCG what is left is mostly the guest waking up and translation: the
 * snapshot holds the guest's RAM, not QEMU's translation cache, so every
 * guest code path a clone runs (kernel syscalls, Bun's event loop, spawn
 * and I/O threads) is translated again in each clone. The setup request is
 * handled 0.7-1.2 s of guest time after the template's `ready` (the
 * harness logs it), while its handler takes 0.1-0.3 s.
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

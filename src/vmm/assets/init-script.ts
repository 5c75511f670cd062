/**
 * @module vmm/assets/init-script
 * The initramfs `/init`: a busybox shell script that mounts proc/sys/dev,
 * loads the virtio modules with one `modprobe -a` (fuse+virtiofs only with `aegis.workspace=1` or `aegis.rootfs=virtiofs`),
 * finds the read-only tools disk by its virtio serial (`aegis-tools`),
 * mounts it on /tools and execs the harness there as PID 1. It avoids
 * subshells and external commands where a builtin will do, because every
 * fork costs 10-20 ms under TCG. With `aegis.nojit=1` (set by the host under
 * TCG) it turns off JavaScriptCore's baseline JIT for the harness, which
 * cuts ~1 s from its start-up there (user processes get their own env).
 * On failure it reboots (QEMU runs with -no-reboot, so the VM exits and the
 * host sees it) instead of hanging.
 */

/** Where the initramfs keeps its modules: `/lib/modules/<release>`, which busybox modprobe reads. */
export function modulesPath(release: string): string {
  return `/lib/modules/${release}`;
}

/**
 * Render /init for the given module load orders (names of
 * `/lib/modules/<release>/<name>.ko`, dependencies first). Each list is
 * loaded by one `modprobe -a` (one fork instead of one per module; forks
 * are what /init's time goes to under TCG), which follows the list's order;
 * if modprobe fails (e.g. a custom kernel whose `uname -r` is not
 * `release`), the modules are loaded one by one with insmod as before.
 * Measured for issue 19 (bench/boot-ab.ts, the same binary with the old
 * initramfs and this one, 4 interleaved cold boots on a loaded host): the
 * 9 base modules took 290 ms median against 430 ms with 9 insmods (per-pair
 * 0.59-0.84 in the three pairs not swamped by other load).
 */
export function initScript(opts: { base: string[]; workspace: string[]; harness: string; release: string }): string {
  const dir = modulesPath(opts.release);
  const ld = (mods: string[], indent: string) =>
    mods.length === 0
      ? `${indent}:`
      : `${indent}modprobe -a ${mods.join(" ")} || { echo "aegis-init: modprobe -a failed; loading the modules one by one" >&2; ${mods.map((m) => `ld ${m};`).join(" ")} }`;
  return `#!/bin/busybox sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
fail() { echo "aegis-init: $*" >&2; sync; reboot -f; }
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
read -r t0 _ < /proc/uptime
ld() { insmod "${dir}/$1.ko" || echo "aegis-init: insmod $1 failed" >&2; }
${ld(opts.base, "")}
read -r tm _ < /proc/uptime
read -r cmdline < /proc/cmdline
# Under TCG (the host says so with aegis.nojit=1) JavaScriptCore's JIT costs far more than it saves:
# every freshly generated machine code page must be re-translated by QEMU. Measured in the guest,
# \`aegis --version\`: 2.0 s default, 0.6 s with useJIT=0, 0.72 s with useBaselineJIT=0. useJIT=0
# would also disable bun:ffi ("bun:ffi requires the JIT"), which the harness needs for mount(2).
case " $cmdline " in *" aegis.nojit=1 "*) export BUN_JSC_useBaselineJIT=0 ;; esac
case " $cmdline " in *" aegis.workspace=1 "*|*" aegis.rootfs=virtiofs "*)
${ld(opts.workspace, "  ")}
;; esac
dev=
n=0
while [ -z "$dev" ]; do
  for d in /sys/block/vd*; do
    [ -e "$d/serial" ] || continue
    read -r s < "$d/serial"
    [ "$s" = aegis-tools ] && dev=/dev/\${d##*/}
  done
  [ -n "$dev" ] && break
  n=$((n + 1))
  [ $n -gt 200 ] && fail "no virtio disk with serial aegis-tools"
  usleep 10000
done
# Large readahead: the harness binary is demand-paged from this disk, and fewer, bigger virtio reads are much cheaper under TCG.
echo 16384 > /sys/block/\${dev#/dev/}/queue/read_ahead_kb
mount -t ext4 -o ro "$dev" /tools || fail "cannot mount tools disk $dev"
read -r t1 _ < /proc/uptime
# The boot benchmark (bench/_phases.ts) reads this line: keep its shape.
echo "aegis-init: /init at $t0 s, modules loaded at $tm s, exec harness at $t1 s" >&2
exec ${opts.harness} __harness
`;
}

/**
 * @module guest/harness/libc
 * The few libc calls the harness needs that Bun does not expose:
 * `mount` and the network ioctls (boot-time setup without forking busybox,
 * ~0.3 s faster under TCG), `waitpid` (reaping orphans as PID 1),
 * `clock_settime` (the `clock.set` RPC), `sync`, and for VMs restored from
 * a template: dropping a disk's cached blocks and reseeding the kernel RNG. Loaded on first use
 * through `bun:ffi` from the glibc that the initramfs already carries (the
 * harness is dynamically linked against it, so dlopen only bumps a reference
 * count). Note bun:ffi needs JavaScriptCore's JIT enabled (see init-script.ts).
 *
 * C signatures:
 * - `pid_t waitpid(pid_t pid, int *wstatus, int options);`
 * - `int waitid(idtype_t idtype, id_t id, siginfo_t *infop, int options);`
 * - `int clock_settime(clockid_t clockid, const struct timespec *tp);`
 * - `void sync(void);`
 * - `int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const void *data);`
 * - `int umount2(const char *target, int flags);`, `int reboot(int op);` (the power-off path, no fork)
 * - `int socket(int domain, int type, int protocol);`
 * - `int ioctl(int fd, unsigned long request, void *arg);` (variadic in C; glibc's is a plain syscall stub)
 * - `int close(int fd);`
 * - `ioctl(fd, BLKFLSBUF, 0)` and `ioctl(fd, RNDADDENTROPY, struct rand_pool_info *)`, `ioctl(fd, RNDRESEEDCRNG)`
 * - `int *__errno_location(void);`
 *
 * Every pointer passed below points into a Buffer/TypedArray held in a local
 * variable until the synchronous call returns; the kernel copies what it needs.
 */
import { dlopen, FFIType, ptr, read } from "bun:ffi";
import { closeSync, openSync } from "node:fs";
import { constants } from "node:os";

const WNOHANG = 1;
const P_ALL = 0;
const WEXITED = 4;
const WNOWAIT = 0x01000000;
/** sizeof(siginfo_t) on Linux, and the offset of `si_pid` in it on 64-bit targets. */
const SIGINFO_BYTES = 128;
const SI_PID_OFFSET = 16;
const ECHILD = 10;
const CLOCK_REALTIME = 0;

function open() {
  return dlopen("libc.so.6", {
    waitpid: { args: [FFIType.i32, FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
    waitid: { args: [FFIType.i32, FFIType.u32, FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
    clock_settime: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
    sync: { args: [], returns: FFIType.void },
    mount: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.u64, FFIType.ptr], returns: FFIType.i32 },
    umount2: { args: [FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
    reboot: { args: [FFIType.i32], returns: FFIType.i32 },
    socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    ioctl: { args: [FFIType.i32, FFIType.u64, FFIType.ptr], returns: FFIType.i32 },
    close: { args: [FFIType.i32], returns: FFIType.i32 },
    setgroups: { args: [FFIType.u64, FFIType.ptr], returns: FFIType.i32 },
    setresgid: { args: [FFIType.u32, FFIType.u32, FFIType.u32], returns: FFIType.i32 },
    __errno_location: { args: [], returns: FFIType.ptr },
  }).symbols;
}

let lib: ReturnType<typeof open> | undefined;
export function libc(): ReturnType<typeof open> {
  lib ??= open();
  return lib;
}

/**
 * Reap `pid` if it is a zombie child of ours; returns true when it was reaped.
 * Only ever called with pids the harness did not spawn itself (orphans
 * re-parented to PID 1), so it never steals an exit status from Bun.
 */
export function reapPid(pid: number): boolean {
  // The status buffer is owned here and outlives the synchronous call.
  const status = new Int32Array(1);
  return libc().waitpid(pid, ptr(status), WNOHANG) === pid;
}

/**
 * Whether some child of this process has exited and waits to be reaped,
 * without reaping it (`waitid(P_ALL, WEXITED | WNOHANG | WNOWAIT)`): one
 * syscall, so the once-a-second reaper scans /proc only when there is
 * something to reap. Linux zeroes `si_pid` when no child is waitable.
 */
export function hasExitedChild(): boolean {
  // The siginfo buffer is owned here and outlives the synchronous call.
  const info = new Int32Array(SIGINFO_BYTES / 4);
  if (libc().waitid(P_ALL, 0, ptr(info), WEXITED | WNOHANG | WNOWAIT) !== 0) {
    if (read.i32(libc().__errno_location()!, 0) === ECHILD) return false; // no children at all
    throw new Error(`waitid(P_ALL) failed: ${errnoName()}`);
  }
  return info[SI_PID_OFFSET / 4] !== 0;
}

/** Set CLOCK_REALTIME to `epochMs`. Throws when the kernel refuses. */
export function setWallClock(epochMs: number): void {
  // struct timespec { time_t tv_sec; long tv_nsec; } on 64-bit Linux; kept alive by `ts` during the call.
  const ts = new BigInt64Array(2);
  ts[0] = BigInt(Math.floor(epochMs / 1000));
  ts[1] = BigInt(Math.round((epochMs % 1000) * 1e6));
  const rc = libc().clock_settime(CLOCK_REALTIME, ptr(ts));
  if (rc !== 0) throw new Error(`clock_settime(${epochMs}) failed`);
}

/** Flush all filesystem buffers. */
export function syncAll(): void {
  libc().sync();
}

export function errnoName(): string {
  const n = read.i32(libc().__errno_location()!, 0);
  const name = Object.entries(constants.errno).find(([, v]) => v === n)?.[0];
  return name ?? `errno ${n}`;
}

function cstr(s: string): Buffer {
  return Buffer.from(`${s}\0`);
}

/** mount(2). `data` is the fs-specific option string. Throws `mount TYPE on TARGET: ERRNO`. */
export function mount(source: string, target: string, fstype: string, flags = 0, data?: string): void {
  const keep = [cstr(source), cstr(target), cstr(fstype), data === undefined ? undefined : cstr(data)];
  const rc = libc().mount(ptr(keep[0]!), ptr(keep[1]!), ptr(keep[2]!), flags, keep[3] ? ptr(keep[3]) : null);
  if (rc !== 0) throw new Error(`mount -t ${fstype} ${source} ${target}${data ? ` -o ${data}` : ""}: ${errnoName()}`);
}

/** umount2(2) with `flags` (0, or MNT_DETACH = 2). Throws `umount TARGET: ERRNO`. */
export function umount(target: string, flags = 0): void {
  const t = cstr(target);
  if (libc().umount2(ptr(t), flags) !== 0) throw new Error(`umount ${target}${flags ? " (lazy)" : ""}: ${errnoName()}`);
}

/** reboot(2) with RB_AUTOBOOT, what busybox `reboot -f` does (QEMU runs with -no-reboot, so the VM exits). Returns only on failure. */
export function rebootNow(): never {
  libc().reboot(0x01234567);
  throw new Error(`reboot: ${errnoName()}`);
}

/** Mount flags (linux/mount.h). */
export const MS = { RDONLY: 1, NOSUID: 2, NODEV: 4, NOEXEC: 8, REMOUNT: 32, BIND: 4096 } as const;

/**
 * Bind-mount `source` onto `target` read-only. The kernel ignores
 * MS_RDONLY on the initial MS_BIND, so it takes a second, remount call.
 */
export function bindReadOnly(source: string, target: string): void {
  mount(source, target, "none", MS.BIND);
  mount("none", target, "none", MS.REMOUNT | MS.BIND | MS.RDONLY);
}

const BLKFLSBUF = 0x1261;
const RNDADDENTROPY = 0x40085203;
const RNDRESEEDCRNG = 0x5207;

/**
 * Drop the cached blocks of block device `dev` (BLKFLSBUF). A VM restored
 * from a template may have cached blocks of the template's disk at the same
 * device (partition probing reads its first and last sectors); they must not
 * be mistaken for this VM's own disk when it is mounted.
 */
export function flushBlockDevice(dev: string): void {
  const fd = openSync(dev, "r");
  try {
    if (libc().ioctl(fd, BLKFLSBUF, null) !== 0) throw new Error(`flush buffers of ${dev}: ${errnoName()}`);
  } finally {
    closeSync(fd);
  }
}

/**
 * Credit `seed` to the kernel's entropy pool and force a CRNG reseed
 * (RNDADDENTROPY + RNDRESEEDCRNG on a /dev/urandom fd). Every VM restored
 * from one template starts with the same RNG state; without this, clones
 * would draw the same "random" numbers until the next scheduled reseed.
 */
export function reseedRandom(seed: Uint8Array): void {
  // struct rand_pool_info { int entropy_count; int buf_size; __u32 buf[]; }; owned by `info` during the call.
  const info = Buffer.alloc(8 + seed.length);
  info.writeInt32LE(seed.length * 8, 0);
  info.writeInt32LE(seed.length, 4);
  info.set(seed, 8);
  const fd = openSync("/dev/urandom", "w");
  try {
    if (libc().ioctl(fd, RNDADDENTROPY, ptr(info)) !== 0) throw new Error(`RNDADDENTROPY: ${errnoName()}`);
    if (libc().ioctl(fd, RNDRESEEDCRNG, null) !== 0) throw new Error(`RNDRESEEDCRNG: ${errnoName()}`);
  } finally {
    closeSync(fd);
  }
}

/**
 * Run `fn` (a synchronous spawn) with this process's group ids set to `gid`
 * and `groups`, then restore root's (gid 0, no supplementary groups). The
 * child inherits them: Bun.spawn's own `gid` option would reset the
 * supplementary groups, and busybox nsenter's `-G` too, so the harness sets
 * them itself and nsenter only switches the uid (`-S`) after its chroot.
 * Only group ids change, and only for the length of the call: the harness
 * stays uid 0 with every capability, so nothing else it does is affected
 * except the group of files created meanwhile (none: JavaScript runs
 * nothing else during a synchronous call).
 */
export function withGroups<T>(gid: number, groups: number[], fn: () => T): T {
  const L = libc();
  // The buffer is owned here and outlives the synchronous call.
  const list = new Uint32Array(groups.length > 0 ? groups : [gid]);
  if (L.setgroups(list.length, ptr(list)) !== 0) throw new Error(`setgroups: ${errnoName()}`);
  try {
    if (L.setresgid(gid, gid, gid) !== 0) throw new Error(`setresgid(${gid}): ${errnoName()}`);
    return fn();
  } finally {
    L.setresgid(0, 0, 0);
    L.setgroups(0, null);
  }
}

const TIOCSPTLCK = 0x40045431;
const TIOCGPTN = 0x80045430;
const TIOCSWINSZ = 0x5414;

/** Unlock a pty master (`unlockpt`) and return its slave's number (`ptsname`). */
export function unlockPty(master: number): number {
  const L = libc();
  // Both buffers are owned here and outlive the synchronous calls.
  const zero = new Int32Array([0]);
  if (L.ioctl(master, TIOCSPTLCK, ptr(zero)) !== 0) throw new Error(`TIOCSPTLCK: ${errnoName()}`);
  const n = new Uint32Array(1);
  if (L.ioctl(master, TIOCGPTN, ptr(n)) !== 0) throw new Error(`TIOCGPTN: ${errnoName()}`);
  return n[0]!;
}

/** Set a terminal's window size (`TIOCSWINSZ`, struct winsize { rows, cols, xpixel, ypixel }); the kernel sends SIGWINCH. */
export function setWindowSize(fd: number, cols: number, rows: number): void {
  const ws = new Uint16Array([rows, cols, 0, 0]);
  if (libc().ioctl(fd, TIOCSWINSZ, ptr(ws)) !== 0) throw new Error(`TIOCSWINSZ: ${errnoName()}`);
}

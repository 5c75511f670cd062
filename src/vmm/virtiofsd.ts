/**
 * @module vmm/virtiofsd
 * The host side of a VM's /workspace: Debian's C `virtiofsd` (QEMU 7.2,
 * `/usr/lib/qemu/virtiofsd`) serving one host directory on a vhost-user
 * socket that QEMU's `vhost-user-fs-device` connects to.
 *
 * Hostile guest. virtiofsd performs each guest request with the guest's
 * uid/gid, so run as host root it let guest root create root-owned setuid
 * binaries and device nodes on the host. It now runs as an unprivileged
 * user inside a user namespace of its own whose only mapping is
 * "namespace root = the workspace owner" (`setpriv` to the owner, then
 * `unshare --user --map-root-user`):
 *   - every file the guest creates is owned on the host by the workspace
 *     owner, so a setuid/setgid bit only ever grants what that user already
 *     has: nothing a host user could not create themselves;
 *   - device nodes are refused (`mknod` of a device needs CAP_MKNOD in the
 *     initial namespace; the guest sees EPERM);
 *   - chown to any other uid/gid is refused (unmapped ids: EINVAL), and so
 *     is every create by a guest user other than root (virtiofsd cannot
 *     switch to an unmapped uid): in the guest, /workspace is root's, and a
 *     process run with `--user` or an image `User` can read it but not
 *     create files in it (known limit of QEMU 7.2's virtiofsd, which has no
 *     uid translation; the Rust virtiofsd's --translate-uid would lift it);
 *   - symlinks stay symlinks (virtiofsd never follows them; no host code of
 *     ours reads inside a workspace).
 *
 * The workspace owner (`workspaceOwner`) is the owner of the workspace
 * directory, except root: root is squashed to nobody:nogroup (65534), as NFS
 * root_squash does, so a root-owned directory is read-only to the guest
 * (a named workspace is created owned by the owner of AEGIS_HOME, or by
 * nobody when that is root; see daemon/instances/spec.ts).
 *
 * Reaching the directory. The owner usually cannot traverse aegisd's 0700
 * state directories, so when aegisd is root a private mount namespace
 * (`unshare --mount`) bind-mounts the workspace and the socket's directory
 * onto a fresh tmpfs moved over that namespace's /tmp, and virtiofsd is
 * given those paths. The socket's own directory belongs to the owner (it
 * must create the socket there); the socket file shows on the host as
 * usual. QEMU 7.2's virtiofsd also writes a lock file under
 * /var/run/virtiofsd, which that namespace covers with the owner's own
 * directory. All this needs aegisd to run as root, as the root-only
 * virtiofsd did before.
 *
 * Lifetime. virtiofsd is spawned detached, as the leader of its own process
 * group (the wrapper `exec`s down to it, and it forks a sandboxed child),
 * and is killed as a group with its VM (`kill()`), and after QEMU exits. It
 * also exits by itself when QEMU disconnects, so neither a daemon crash nor
 * a QEMU crash leaves it behind.
 *
 * Root filesystems (`startRootfsVirtiofsd`, the containerd shim's bundle
 * rootfs). A container's files keep their real owners (root-owned /etc,
 * setuid binaries), which the squashed workspace mapping would destroy, so
 * this virtiofsd runs as root, but in a private mount namespace where the
 * directory is bind-mounted read-only: every write the guest attempts fails
 * with EROFS on the host, and the guest's overlayfs puts its writes in the
 * VM's own upper layer. `cache=always`: nobody changes that tree while
 * the VM runs (containerd's snapshot is ours until the task is deleted).
 * The namespace is a *slave* copy of the host's (not private): mounts made
 * later under a directory the host made a shared mount reach virtiofsd
 * (the shim's pod directory, where each container's rootfs is moved
 * read-only, shim/sandbox.ts); nothing propagates back to the host, and a
 * host tree that is not a shared mount behaves exactly as with a private one.
 *
 * `cache=auto`: the guest caches attributes and names for 1 s, so a file the
 * host creates or changes shows in the guest within ~1 s; guest writes reach
 * the host file at once (write-through).
 */
import { chownSync, existsSync, lstatSync, mkdirSync, rmSync, type Stats } from "node:fs";
import { basename, dirname, join } from "node:path";

/** Paths where distributions install virtiofsd. */
const CANDIDATES = ["/usr/lib/qemu/virtiofsd", "/usr/libexec/virtiofsd"];

/** The uid/gid guest root is squashed to when the workspace owner is root. */
export const NOBODY = { uid: 65534, gid: 65534 } as const;

/** A host user and group. */
export interface HostIds {
  uid: number;
  gid: number;
}

/** Who owns what the guest writes in a workspace directory with stat `st`: its owner, root squashed to nobody. */
export function workspaceOwner(st: Pick<Stats, "uid" | "gid">): HostIds {
  return st.uid === 0 ? { ...NOBODY } : { uid: st.uid, gid: st.gid };
}

/** Path of virtiofsd, or an actionable error. */
export function virtiofsdPath(): string {
  const found = CANDIDATES.find((p) => existsSync(p)) ?? Bun.which("virtiofsd");
  if (!found) throw new Error("virtiofsd not found, so workspaces cannot be shared\nhint: apt-get install qemu-system-common (it ships /usr/lib/qemu/virtiofsd)");
  return found;
}

/** Path of a util-linux tool the wrapper needs, or an actionable error. */
function tool(name: string): string {
  const found = Bun.which(name, { PATH: "/usr/bin:/bin:/usr/sbin:/sbin" });
  if (!found) throw new Error(`${name} not found, so workspaces cannot be shared safely\nhint: apt-get install util-linux mount`);
  return found;
}

/**
 * Where QEMU 7.2's virtiofsd insists on writing its pid/lock file (built in,
 * not configurable); the owner gets a private tmpfs directory there.
 */
const PID_DIR = "/var/run/virtiofsd";

/** Where the private mount namespace shows the workspace and the socket directory to virtiofsd. */
const STAGE = "/tmp";

/**
 * The mount-namespace wrapper (run by `sh -c` as root): stage the workspace
 * and the socket directory on a tmpfs, move it over /tmp, then drop to the
 * owner in a user namespace. Arguments come positionally, never spliced
 * into the script.
 */
const STAGE_SCRIPT = `set -eu
ws=$1 sockdir=$2 stage=$3 mount=$4 ids=$5; shift 5
"$mount" -t tmpfs -o mode=0755,size=64k aegis-vfs "$stage"
mkdir "$stage/ws" "$stage/sock" "$stage/run"
chown "$ids" "$stage/run"
"$mount" --bind "$ws" "$stage/ws"
"$mount" --bind "$sockdir" "$stage/sock"
mkdir -p ${PID_DIR}
"$mount" --bind "$stage/run" ${PID_DIR}
"$mount" --move "$stage" ${STAGE}
exec "$@"`;

/** The virtiofsd argv proper, for `source` served on `socket`. */
export function virtiofsdArgv(bin: string, source: string, socket: string): string[] {
  // --rlimit-nofile=0: an unprivileged virtiofsd cannot raise its limit, and would fail trying.
  return [bin, `--socket-path=${socket}`, "-o", `source=${source}`, "-o", "cache=auto", "--thread-pool-size=2", "--rlimit-nofile=0"];
}

/**
 * The whole argv that starts virtiofsd as `owner` in its own user namespace.
 * `stageDir` is an empty root-only directory the mount namespace mounts
 * over.
 */
export function sandboxedVirtiofsdArgv(bin: string, source: string, socket: string, owner: HostIds, stageDir: string): string[] {
  const userns = [tool("unshare"), "--user", "--map-root-user", "--"];
  const drop = [tool("setpriv"), `--reuid=${owner.uid}`, `--regid=${owner.gid}`, "--clear-groups", "--"];
  const inner = virtiofsdArgv(bin, `${STAGE}/ws`, `${STAGE}/sock/${basename(socket)}`);
  return [tool("unshare"), "--mount", "--propagation", "private", "--", "/bin/sh", "-c", STAGE_SCRIPT, "aegis-vfs", source, dirname(socket), stageDir, tool("mount"), `${owner.uid}:${owner.gid}`, ...drop, ...userns, ...inner];
}

/** Kill a process group, ignoring only "already gone". */
export function killGroup(pid: number, signal: NodeJS.Signals = "SIGKILL"): void {
  try {
    process.kill(-pid, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
  }
}

/**
 * Start virtiofsd for `source` and wait until its socket exists. `socket`
 * must sit in a directory of its own (it is handed to the workspace owner).
 */
export async function startVirtiofsd(source: string, socket: string, logPath: string, env: Record<string, string>): Promise<Bun.Subprocess> {
  const st = existsSync(source) ? lstatSync(source) : undefined;
  if (!st?.isDirectory()) {
    throw new Error(`workspace ${source} is not a directory${st?.isSymbolicLink() ? " (it is a symbolic link)" : ""}\nhint: create it first, or pass the path of an existing directory`);
  }
  if (process.getuid?.() !== 0) throw new Error(`cannot share workspace ${source}: aegisd must run as root to start virtiofsd\nhint: start aegisd as root (sudo), or run without --workspace`);
  const owner = workspaceOwner(st);
  const sockDir = dirname(socket);
  const stageDir = join(dirname(sockDir), "vfs-stage");
  rmSync(sockDir, { recursive: true, force: true });
  mkdirSync(sockDir, { mode: 0o700 });
  chownSync(sockDir, owner.uid, owner.gid);
  mkdirSync(stageDir, { recursive: true, mode: 0o700 });
  const proc = Bun.spawn(sandboxedVirtiofsdArgv(virtiofsdPath(), source, socket, owner, stageDir), {
    stdin: "ignore",
    stdout: "ignore",
    stderr: Bun.file(logPath),
    env,
    detached: true,
  });
  return await waitForSocket(proc, socket, logPath, `workspace ${source}`, `; virtiofsd runs as uid ${owner.uid} in a user namespace, which needs user namespaces enabled (sysctl user.max_user_namespaces)`);
}

/**
 * The mount-namespace wrapper for a root filesystem: bind the directory onto
 * itself, remount that bind read-only, then exec virtiofsd (as root, so
 * owners and modes show as they are). Arguments come positionally. The bind
 * is recursive: the OCI bind mounts the shim put below the rootfs
 * (shim/bind-mounts.ts) are part of what the guest sees, each with its own
 * flags (a `ro` one stays read-only).
 */
const ROOTFS_SCRIPT = `set -eu
dir=$1 mount=$2; shift 2
"$mount" --rbind "$dir" "$dir"
"$mount" -o remount,bind,ro "$dir"
exec "$@"`;

/** The argv that serves `source` read-only on `socket` (see the module notes). */
export function rootfsVirtiofsdArgv(bin: string, source: string, socket: string): string[] {
  const inner = [bin, `--socket-path=${socket}`, "-o", `source=${source}`, "-o", "cache=always", "--thread-pool-size=2"];
  return [tool("unshare"), "--mount", "--propagation", "slave", "--", "/bin/sh", "-c", ROOTFS_SCRIPT, "aegis-rootfs", source, tool("mount"), ...inner];
}

/** Start a read-only virtiofsd for a root filesystem directory and wait for its socket. */
export async function startRootfsVirtiofsd(source: string, socket: string, logPath: string, env: Record<string, string>): Promise<Bun.Subprocess> {
  const st = existsSync(source) ? lstatSync(source) : undefined;
  if (!st?.isDirectory()) throw new Error(`root filesystem ${source} is not a directory\nhint: mount the container's rootfs there first`);
  if (process.getuid?.() !== 0) throw new Error(`cannot boot root filesystem ${source}: aegisd must run as root to start virtiofsd\nhint: start aegisd as root`);
  const sockDir = dirname(socket);
  rmSync(sockDir, { recursive: true, force: true });
  mkdirSync(sockDir, { mode: 0o700 });
  const proc = Bun.spawn(rootfsVirtiofsdArgv(virtiofsdPath(), source, socket), { stdin: "ignore", stdout: "ignore", stderr: Bun.file(logPath), env, detached: true });
  return await waitForSocket(proc, socket, logPath, `root filesystem ${source}`, "");
}

/**
 * Wait (5 s at most) until `proc` has created its vhost-user `socket`; on
 * exit or timeout kill it and throw with the tail of its log and `hint`.
 */
async function waitForSocket(proc: Bun.Subprocess, socket: string, logPath: string, what: string, hint: string): Promise<Bun.Subprocess> {
  const deadline = Date.now() + 5000;
  while (!existsSync(socket)) {
    if (proc.exitCode !== null || Date.now() > deadline) {
      killGroup(proc.pid);
      await proc.exited;
      const log = existsSync(logPath) ? (await Bun.file(logPath).text()).trim().split("\n").slice(-5).join("\n") : "";
      throw new Error(`virtiofsd for ${what} did not create ${socket}${log ? `: ${log}` : ""}\nhint: see ${logPath}${hint}`);
    }
    await Bun.sleep(5);
  }
  return proc;
}

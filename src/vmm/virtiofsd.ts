/**
 * @module vmm/virtiofsd
 * The host side of a VM's /workspace: Debian's C `virtiofsd` (QEMU 7.2,
 * `/usr/lib/qemu/virtiofsd`, runs as root) serving one host directory on a
 * vhost-user socket that QEMU's `vhost-user-fs-device` connects to.
 *
 * Lifetime. virtiofsd is spawned detached, as the leader of its own process
 * group (it forks a sandboxed child), and is killed as a group with its VM
 * (`kill()`), and after QEMU exits. It also exits by itself when QEMU
 * disconnects (measured: QEMU killed with SIGKILL, virtiofsd gone within a
 * second), so neither a daemon crash nor a QEMU crash leaves it behind.
 *
 * `cache=auto`: the guest caches attributes and names for 1 s, so a file the
 * host creates or changes shows in the guest within ~1 s; guest writes reach
 * the host file at once (write-through).
 */
import { existsSync, rmSync, statSync } from "node:fs";

/** Paths where distributions install virtiofsd. */
const CANDIDATES = ["/usr/lib/qemu/virtiofsd", "/usr/libexec/virtiofsd"];

/** Path of virtiofsd, or an actionable error. */
export function virtiofsdPath(): string {
  const found = CANDIDATES.find((p) => existsSync(p)) ?? Bun.which("virtiofsd");
  if (!found) throw new Error("virtiofsd not found, so workspaces cannot be shared\nhint: apt-get install qemu-system-common (it ships /usr/lib/qemu/virtiofsd)");
  return found;
}

/** The virtiofsd argv for sharing `source` on `socket`. */
export function virtiofsdArgv(bin: string, source: string, socket: string): string[] {
  return [bin, `--socket-path=${socket}`, "-o", `source=${source}`, "-o", "cache=auto", "--thread-pool-size=2"];
}

/** Kill a process group, ignoring only "already gone". */
export function killGroup(pid: number, signal: NodeJS.Signals = "SIGKILL"): void {
  try {
    process.kill(-pid, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
  }
}

/** Start virtiofsd for `source` and wait until its socket exists. */
export async function startVirtiofsd(source: string, socket: string, logPath: string, env: Record<string, string>): Promise<Bun.Subprocess> {
  if (!existsSync(source) || !statSync(source).isDirectory()) {
    throw new Error(`workspace ${source} is not a directory\nhint: create it first, or pass the path of an existing directory`);
  }
  rmSync(socket, { force: true });
  const proc = Bun.spawn(virtiofsdArgv(virtiofsdPath(), source, socket), {
    stdin: "ignore",
    stdout: "ignore",
    stderr: Bun.file(logPath),
    env,
    detached: true,
  });
  const deadline = Date.now() + 5000;
  while (!existsSync(socket)) {
    if (proc.exitCode !== null || Date.now() > deadline) {
      killGroup(proc.pid);
      await proc.exited;
      const log = existsSync(logPath) ? (await Bun.file(logPath).text()).trim().split("\n").slice(-5).join("\n") : "";
      throw new Error(`virtiofsd for workspace ${source} did not create ${socket}${log ? `: ${log}` : ""}\nhint: virtiofsd from QEMU 7.2 must run as root`);
    }
    await Bun.sleep(5);
  }
  return proc;
}

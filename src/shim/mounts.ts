/**
 * @module shim/mounts
 * containerd's rootfs mounts (the snapshotter's overlay or bind mount) put
 * together at `<bundle>/rootfs` with mount(8), as the runc shim does with
 * mount(2): this directory is what the VM boots through virtiofs. Options
 * are passed as one `-o` list, never through a shell.
 */
import { existsSync, mkdirSync, readFileSync } from "node:fs";

/** One containerd.types.Mount. */
export interface RootfsMount {
  type: string;
  source: string;
  target?: string;
  options: string[];
}

async function run(argv: string[]): Promise<void> {
  const p = Bun.spawn(argv, { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  const [err, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`${argv.join(" ")} failed (exit ${code}): ${err.trim()}`);
}

/** The mount(8) argv for `m` at `target`. */
export function mountArgv(m: RootfsMount, target: string): string[] {
  const opts = m.options.join(",");
  const bind = m.type === "bind" || m.options.includes("bind") || m.options.includes("rbind");
  return ["mount", ...(bind ? [] : ["-t", m.type]), ...(opts ? ["-o", opts] : []), m.source, target];
}

/** Mount every rootfs mount at `target`, in order. */
export async function mountRootfs(mounts: RootfsMount[], target: string): Promise<void> {
  mkdirSync(target, { recursive: true });
  for (const m of mounts) await run(mountArgv(m, target));
}

/** Whether something is mounted at `target` (per /proc/self/mounts). */
export function isMounted(target: string): boolean {
  return readFileSync("/proc/self/mounts", "utf8")
    .split("\n")
    .some((l) => l.split(" ")[1] === target);
}

/** Unmount `target` and everything below it (the spec's bind mounts too, see bind-mounts.ts); nothing mounted is fine. */
export async function unmountRootfs(target: string): Promise<void> {
  if (!existsSync(target)) return;
  if (isMounted(target)) return await run(["umount", "-R", target]);
  // A bundle whose rootfs is a plain directory can still hold bind mounts below it: deepest first.
  const below = readFileSync("/proc/self/mounts", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[1] ?? "")
    .filter((m) => m.startsWith(`${target}/`))
    .sort()
    .reverse();
  for (const m of below) await run(["umount", "-R", m]).catch(() => {});
}

/**
 * @module shim/bind-mounts
 * The OCI spec's `mounts` of type bind (`ctr run --mount
 * type=bind,src=/tmp/x,dst=/data,options=rbind:ro`, kubelet's volumes and
 * /etc/hosts): bind-mounted on the host at `<rootfs>/<destination>` before
 * the VM boots, so the task's rootfs virtiofs share (recursive, see
 * vmm/virtiofsd.ts) carries them into the guest at the destination. Other
 * mount types (proc, sysfs, tmpfs, devpts, mqueue, cgroup) are the guest's
 * own: the harness mounts its proc, sys, dev, /dev/pts, /dev/shm, /tmp and
 * /run, and they are skipped here.
 *
 * Semantics, and their limits in this version:
 *   - the guest sees the source's files as they are when the VM boots, and
 *     later host changes within the share's cache (`cache=always`: names
 *     and attributes may stay cached);
 *   - `ro` makes the host bind read-only, and once the VM runs the shim has
 *     the harness make the destination read-only in the guest too
 *     (`POST /v1/instances/:id/files/readonly`: a bind onto itself,
 *     remounted ro), so guest writes fail with EROFS, even for guest root;
 *   - a rw bind is copy-on-write from the guest's side, not write-through:
 *     the root share is the guest overlay's read-only lower layer, so guest
 *     writes land in the VM's own overlay and never reach the source;
 *   - the destination is resolved inside the rootfs (symlinks in the image
 *     are followed as the container would see them, never out of the
 *     rootfs), and created when missing (a directory, or an empty file for a
 *     file source), as runc creates mount points.
 */
import { existsSync, lstatSync, mkdirSync, readlinkSync, statSync, writeFileSync } from "node:fs";
import { dirname, posix } from "node:path";
import { z } from "zod";

/** One OCI mount (the fields used here). */
export const OciMount = z.object({
  destination: z.string().startsWith("/", "mounts[].destination must be absolute"),
  type: z.string().optional(),
  source: z.string().optional(),
  options: z.array(z.string()).optional(),
});
export type OciMount = z.infer<typeof OciMount>;

/** A bind the shim will make: host `source` at host `target` (inside the rootfs). */
export interface BindPlan {
  source: string;
  destination: string;
  recursive: boolean;
  /** Flags for the read-only remount (empty: no remount). */
  remount: string[];
}

const REMOUNT_FLAGS = new Set(["ro", "nosuid", "nodev", "noexec"]);
const MAX_SYMLINKS = 40;

/** The bind mounts of a spec's `mounts` (other types are the guest's own). */
export function bindPlans(mounts: OciMount[]): BindPlan[] {
  const out: BindPlan[] = [];
  for (const m of mounts) {
    const opts = m.options ?? [];
    if (m.type !== "bind" && !opts.includes("bind") && !opts.includes("rbind")) continue;
    if (!m.source || !m.source.startsWith("/")) throw new Error(`bind mount to ${m.destination}: source ${JSON.stringify(m.source ?? "")} must be an absolute host path`);
    const remount = opts.filter((o) => REMOUNT_FLAGS.has(o));
    out.push({ source: m.source, destination: m.destination, recursive: opts.includes("rbind"), remount: remount.includes("ro") ? remount : [] });
  }
  return out;
}

/**
 * The host path of guest path `dest` inside `root`: every symlink met on
 * the way is resolved as the guest would see it (absolute targets from
 * `root`, `..` never above it). Missing components are kept as they are.
 */
export function resolveInRootfs(root: string, dest: string): string {
  let done = "";
  const todo = posix.normalize(dest).split("/").filter((c) => c !== "" && c !== ".");
  let hops = 0;
  while (todo.length > 0) {
    const c = todo.shift()!;
    if (c === "..") {
      done = posix.dirname(done === "" ? "/" : done);
      if (done === "/") done = "";
      continue;
    }
    const host = `${root}${done}/${c}`;
    const st = existsSync(host) || isLink(host) ? lstatSync(host) : null;
    if (st?.isSymbolicLink()) {
      if (++hops > MAX_SYMLINKS) throw new Error(`bind mount destination ${dest}: too many symlinks in the image`);
      const target = readlinkSync(host);
      todo.unshift(...target.split("/").filter((x) => x !== "" && x !== "."));
      if (target.startsWith("/")) done = "";
      continue;
    }
    done = `${done}/${c}`;
  }
  return `${root}${done}`;
}

function isLink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

async function run(argv: string[]): Promise<void> {
  const p = Bun.spawn(argv, { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  const [err, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`${argv.join(" ")} failed (exit ${code}): ${err.trim()}`);
}

/** Make the binds of `plans` under `rootfs`; returns the host targets mounted, in order. */
export async function mountBinds(plans: BindPlan[], rootfs: string): Promise<string[]> {
  const done: string[] = [];
  try {
    for (const b of plans) {
      if (!existsSync(b.source)) throw new Error(`bind mount to ${b.destination}: source ${b.source} does not exist on the host`);
      const target = resolveInRootfs(rootfs, b.destination);
      if (!existsSync(target)) {
        if (statSync(b.source).isDirectory()) mkdirSync(target, { recursive: true });
        else {
          mkdirSync(dirname(target), { recursive: true });
          writeFileSync(target, "");
        }
      }
      await run(["mount", b.recursive ? "--rbind" : "--bind", b.source, target]);
      done.push(target);
      if (b.remount.length > 0) await run(["mount", "-o", `remount,bind,${b.remount.join(",")}`, target]);
    }
  } catch (err) {
    await unmountBinds(done);
    throw err;
  }
  return done;
}

/** Unmount what mountBinds mounted (last first); failures are reported, not fatal to the others. */
export async function unmountBinds(targets: string[], log: (msg: string) => void = () => {}): Promise<void> {
  for (const t of [...targets].reverse()) {
    try {
      await run(["umount", "-R", t]);
    } catch (err) {
      log(`could not unmount bind ${t}: ${(err as Error).message}`);
    }
  }
}

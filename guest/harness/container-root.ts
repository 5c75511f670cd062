/**
 * @module guest/harness/container-root
 * Roots of the containers of a pod VM (containerd shim, CRI path): the VM's
 * root filesystem is the pod's host directory, which holds one directory
 * per container (the host side bind-mounts each container's rootfs there;
 * docs/containerd-shim.md). A process started with `root_subdir` is
 * chrooted into `<rootfs>/<root_subdir>` instead of the rootfs itself.
 *
 * On the first process of a container root, the harness mounts what a
 * container expects there: /proc (its own mount), and a recursive bind of
 * the VM root's /dev (devtmpfs, devpts for terminals, /dev/shm). The
 * directories are made when the image lacks them (the writes go to the
 * VM's overlay, never to the host). The subdirectory must be a plain
 * relative path to an existing directory: no `..`, no absolute path.
 */
import { existsSync, mkdirSync, statSync } from "node:fs";
import { RpcError } from "../../src/api/jsonrpc.ts";
import { RpcErrorCode } from "../../src/api/schema/guest-wire.ts";
import { MS, mount } from "./libc.ts";

const MS_REC = 16384;

/** Container roots prepared so far (their mounts are in place). */
const prepared = new Set<string>();

/** The directory processes with `subdir` are chrooted into, under `base` (the VM's root). */
export function containerRootPath(base: string | undefined, subdir: string): string {
  if (!base) throw new RpcError(RpcErrorCode.invalidParams, `root_subdir ${JSON.stringify(subdir)} needs a VM with a root filesystem`);
  const parts = subdir.split("/").filter((p) => p !== "" && p !== ".");
  if (subdir.startsWith("/") || parts.length === 0 || parts.includes("..")) throw new RpcError(RpcErrorCode.invalidParams, `root_subdir ${JSON.stringify(subdir)} must be a relative path without ".."`);
  return `${base}/${parts.join("/")}`;
}

/** Resolve and prepare the container root for `subdir` (see the module notes); returns its path. */
export function containerRoot(base: string | undefined, subdir: string): string {
  const root = containerRootPath(base, subdir);
  if (prepared.has(root)) return root;
  if (!existsSync(root) || !statSync(root).isDirectory()) throw new RpcError(RpcErrorCode.spawnFailed, `container root ${subdir} is not a directory of the pod's root filesystem`);
  mkdirSync(`${root}/proc`, { recursive: true });
  mkdirSync(`${root}/dev`, { recursive: true });
  mount("proc", `${root}/proc`, "proc", MS.NOSUID | MS.NODEV | MS.NOEXEC);
  mount(`${base}/dev`, `${root}/dev`, "none", MS.BIND | MS_REC);
  prepared.add(root);
  return root;
}

/**
 * @module vmm/libkrun-config
 * What the daemon tells one `aegis-vmm-worker` (worker-main.ts): a strict
 * JSON document written to the worker's stdin pipe (never argv or env), and
 * the fixed order of libkrun calls that turns it into a VM (`applyConfig`).
 *
 * The guest under libkrun (the design; libkrun itself never ran on our CI):
 * - Kernel: libkrunfw's, loaded by libkrun (virtio drivers, vsock and
 *   virtiofs built in, so no modules to load).
 * - Root: `krun_set_root` of a host directory holding the same userland as
 *   our initramfs (busybox, glibc, the harness at `/tools/aegis`; see
 *   libkrun-root.ts). libkrun injects its own `/init.krun` into it, which
 *   mounts /proc, /sys and /dev and then execs the program set with
 *   `krun_set_exec`: `/tools/aegis __harness`, i.e. the harness, like the
 *   initramfs `/init` does under QEMU.
 * - Disks: the read-only image (`aegis-root`) and the overlay disk
 *   (`aegis-overlay`) through `krun_add_disk`, in that order (/dev/vda,
 *   /dev/vdb). libkrun's virtio-blk serial is derived from the image file's
 *   dev/rdev/inode, not from the block id (as in Firecracker), so the
 *   harness cannot find them by serial as under QEMU: `AEGIS_DISKS` lists
 *   the block ids in attach order for it instead.
 * - Workspace: `krun_add_virtiofs` with tag `workspace`.
 * - Control channel: vsock port `CONTROL_VSOCK_PORT` mapped by
 *   `krun_add_vsock_port` to `<runDir>/ctl.sock`, where the backend listens
 *   before spawning the worker (the same ControlChannel as QEMU's); the
 *   harness connects to host CID 2 on that port (guest/harness/vsock.ts).
 * - Env: only non-secret switches (`AEGIS_HARNESS_INIT`, `AEGIS_HOSTNAME`, `AEGIS_WORKSPACE`,
 *   `AEGIS_DISKS`, `PATH`); libkrun passes argv/env on the guest kernel
 *   command line (each wrapped in `"`), so the harness's `aegis.*` kernel
 *   parameters are not available under libkrun and these variables stand
 *   in for them. Secrets go over the control channel, as with QEMU.
 * - Ports: `krun_set_port_map` (`host:guest`, TSI networking); an empty map
 *   exposes nothing.
 */
import { z } from "zod";
import type { Libkrun } from "../../ffi/libkrun.ts";
import { CONTROL_VSOCK_PORT } from "../api/schema/control.ts";
import type { VmSpec } from "./backend.ts";

/** Where the harness lives inside the libkrun root directory. */
export const KRUN_HARNESS_PATH = "/tools/aegis";

/** The worker's configuration (strict: unknown keys are an error). */
export const KrunWorkerConfig = z
  .object({
    /** Format version; bump on incompatible changes. */
    v: z.literal(1),
    id: z.string().min(1),
    /** Library to dlopen (the one the daemon probed). */
    library: z.string().min(1),
    logLevel: z.number().int().min(0).max(5),
    vcpus: z.number().int().min(1).max(255),
    memoryMb: z.number().int().min(1).max(0xffff_ffff),
    rootDir: z.string().min(1),
    disks: z.array(z.object({ blockId: z.string().min(1), path: z.string().min(1), readOnly: z.boolean() }).strict()),
    virtiofs: z.array(z.object({ tag: z.string().min(1), path: z.string().min(1) }).strict()),
    exec: z.object({ path: z.string().min(1), argv: z.array(z.string()), env: z.record(z.string(), z.string()) }).strict(),
    workdir: z.string().min(1).optional(),
    vsock: z.array(z.object({ port: z.number().int().min(0).max(0xffff_ffff), socket: z.string().min(1) }).strict()),
    portMap: z.array(z.string().regex(/^\d{1,5}:\d{1,5}$/)),
    /** Guest console log; needs the optional `krun_set_console_output`. */
    consoleOutput: z.string().min(1).optional(),
  })
  .strict();

/** Parsed worker configuration. */
export type KrunWorkerConfig = z.infer<typeof KrunWorkerConfig>;

/** Host-side paths of one libkrun VM. */
export interface KrunVmPaths {
  ctl: string;
  console: string;
  workerLog: string;
}

/** Build the worker configuration for `spec`. */
export function workerConfig(spec: VmSpec, opts: { library: string; rootDir: string; baseRootfs: string; paths: KrunVmPaths; logLevel?: number }): KrunWorkerConfig {
  const disks = [{ blockId: "aegis-root", path: spec.rootfs || opts.baseRootfs, readOnly: true }];
  if (spec.overlayDisk) disks.push({ blockId: "aegis-overlay", path: spec.overlayDisk, readOnly: false });
  const env: Record<string, string> = { PATH: "/bin:/sbin:/usr/bin:/usr/sbin", AEGIS_HARNESS_INIT: "1", AEGIS_HOSTNAME: spec.hostname, AEGIS_DISKS: disks.map((d) => d.blockId).join(",") };
  if (spec.workspace) env.AEGIS_WORKSPACE = "1";
  return {
    v: 1,
    id: spec.id,
    library: opts.library,
    logLevel: opts.logLevel ?? 1,
    vcpus: spec.vcpus,
    memoryMb: spec.memoryMb,
    rootDir: opts.rootDir,
    disks,
    virtiofs: spec.workspace ? [{ tag: "workspace", path: spec.workspace }] : [],
    exec: { path: KRUN_HARNESS_PATH, argv: ["__harness"], env },
    workdir: "/",
    vsock: [{ port: CONTROL_VSOCK_PORT, socket: opts.paths.ctl }],
    portMap: spec.ports.map((p) => `${p.hostPort}:${p.guestPort}`),
    consoleOutput: opts.paths.console,
  };
}

/**
 * Configure a new libkrun context from `cfg` and return its id. On any
 * failure the context is freed and the error (a `KrunError` naming the C
 * function) propagates. Does not call `krun_start_enter`.
 */
export function applyConfig(lib: Libkrun, cfg: KrunWorkerConfig): number {
  lib.setLogLevel(cfg.logLevel);
  const ctx = lib.createCtx();
  try {
    lib.setVmConfig(ctx, cfg.vcpus, cfg.memoryMb);
    lib.setRoot(ctx, cfg.rootDir);
    for (const d of cfg.disks) lib.addDisk(ctx, d.blockId, d.path, d.readOnly);
    for (const fs of cfg.virtiofs) lib.addVirtiofs(ctx, fs.tag, fs.path);
    for (const v of cfg.vsock) lib.addVsockPort(ctx, v.port, v.socket);
    lib.setPortMap(ctx, cfg.portMap);
    if (cfg.workdir) lib.setWorkdir(ctx, cfg.workdir);
    lib.setExec(ctx, cfg.exec.path, cfg.exec.argv, cfg.exec.env);
    if (cfg.consoleOutput && lib.has("krun_set_console_output")) lib.setConsoleOutput(ctx, cfg.consoleOutput);
  } catch (err) {
    try {
      lib.freeCtx(ctx);
    } catch (freeErr) {
      throw new AggregateError([err, freeErr], `${err instanceof Error ? err.message : String(err)}; freeing the context failed too`);
    }
    throw err;
  }
  return ctx;
}

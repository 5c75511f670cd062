/**
 * @module ffi/libkrun
 * The one module that owns the C boundary to libkrun (STYLE rules 18-20).
 * Every symbol is declared here with its C signature copied verbatim from
 * containers/libkrun `include/libkrun.h`; everything else calls the typed
 * wrappers of `Libkrun`, which
 * - encode every string themselves as a NUL-terminated Buffer (rejecting
 *   embedded NUL, and `"` in argv/env, which libkrun wraps in quotes on the
 *   guest kernel command line),
 * - pass string arrays as a `BigUint64Array` of `ptr(buf)` plus a trailing
 *   `0n`, with every Buffer held in a local `keep` array until the call
 *   returns (libkrun copies what it keeps; nothing we pass outlives the call),
 * - range-check integers against their C type before the call (u8 vCPUs,
 *   u32 RAM MiB / ports / context ids),
 * - turn a negative return into `KrunError { fn, errno, code }`,
 * - never pass a NULL envp: a NULL envp makes libkrun copy the whole host
 *   environment into the guest.
 *
 * Required symbols are bound in one `dlopen` (all-or-nothing: a missing one
 * fails the load); newer ones (`krun_add_disk2`, `krun_has_feature`,
 * `krun_set_console_output`, `krun_get_max_vcpus`) are probed one by one.
 *
 * `krun_start_enter` takes the process over and `exit()`s it when the VM
 * ends; it only returns on a configuration error. Call it only from the
 * `aegis-vmm-worker` role (one VM per process), never from the daemon.
 */
import { dlopen, FFIType, ptr } from "bun:ffi";
import { constants } from "node:os";

/** Required symbols (one dlopen; the load fails when any is missing). */
const REQUIRED = {
  /** `int32_t krun_set_log_level(uint32_t level);` */
  krun_set_log_level: { args: [FFIType.u32], returns: FFIType.i32 },
  /** `int32_t krun_create_ctx();` */
  krun_create_ctx: { args: [], returns: FFIType.i32 },
  /** `int32_t krun_free_ctx(uint32_t ctx_id);` */
  krun_free_ctx: { args: [FFIType.u32], returns: FFIType.i32 },
  /** `int32_t krun_set_vm_config(uint32_t ctx_id, uint8_t num_vcpus, uint32_t ram_mib);` */
  krun_set_vm_config: { args: [FFIType.u32, FFIType.u8, FFIType.u32], returns: FFIType.i32 },
  /** `int32_t krun_set_root(uint32_t ctx_id, const char *root_path);` */
  krun_set_root: { args: [FFIType.u32, FFIType.ptr], returns: FFIType.i32 },
  /** `int32_t krun_add_disk(uint32_t ctx_id, const char *block_id, const char *disk_path, bool read_only);` */
  krun_add_disk: { args: [FFIType.u32, FFIType.ptr, FFIType.ptr, FFIType.bool], returns: FFIType.i32 },
  /** `int32_t krun_add_virtiofs(uint32_t ctx_id, const char *c_tag, const char *c_path);` */
  krun_add_virtiofs: { args: [FFIType.u32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
  /** `int32_t krun_set_exec(uint32_t ctx_id, const char *exec_path, const char *const argv[], const char *const envp[]);` */
  krun_set_exec: { args: [FFIType.u32, FFIType.ptr, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
  /** `int32_t krun_set_env(uint32_t ctx_id, const char *const envp[]);` */
  krun_set_env: { args: [FFIType.u32, FFIType.ptr], returns: FFIType.i32 },
  /** `int32_t krun_set_workdir(uint32_t ctx_id, const char *workdir_path);` */
  krun_set_workdir: { args: [FFIType.u32, FFIType.ptr], returns: FFIType.i32 },
  /** `int32_t krun_add_vsock_port(uint32_t ctx_id, uint32_t port, const char *c_filepath);` */
  krun_add_vsock_port: { args: [FFIType.u32, FFIType.u32, FFIType.ptr], returns: FFIType.i32 },
  /** `int32_t krun_set_port_map(uint32_t ctx_id, const char *const port_map[]);` */
  krun_set_port_map: { args: [FFIType.u32, FFIType.ptr], returns: FFIType.i32 },
  /** `int32_t krun_start_enter(uint32_t ctx_id);` */
  krun_start_enter: { args: [FFIType.u32], returns: FFIType.i32 },
} as const;

/** Newer symbols, each probed on its own; absent ones leave the wrapper unavailable. */
const OPTIONAL = {
  /** `int32_t krun_add_disk2(uint32_t ctx_id, const char *block_id, const char *disk_path, uint32_t disk_format, bool read_only);` */
  krun_add_disk2: { args: [FFIType.u32, FFIType.ptr, FFIType.ptr, FFIType.u32, FFIType.bool], returns: FFIType.i32 },
  /** `int32_t krun_has_feature(uint64_t feature);` */
  krun_has_feature: { args: [FFIType.u64], returns: FFIType.i32 },
  /** `int32_t krun_set_console_output(uint32_t ctx_id, const char *c_filepath);` */
  krun_set_console_output: { args: [FFIType.u32, FFIType.ptr], returns: FFIType.i32 },
  /** `int32_t krun_get_max_vcpus(void);` */
  krun_get_max_vcpus: { args: [], returns: FFIType.i32 },
} as const;

/** Name of an optional symbol. */
export type OptionalSymbol = keyof typeof OPTIONAL;

/** `KRUN_DISK_FORMAT_RAW` / `KRUN_DISK_FORMAT_QCOW2` of libkrun.h. */
export const KRUN_DISK_FORMAT = { raw: 0, qcow2: 1 } as const;

/** A libkrun call returned a negative errno. */
export class KrunError extends Error {
  override name = "KrunError";
  /** errno name (`EINVAL`), or `E<number>` when the host has no name for it. */
  readonly code: string;
  constructor(
    /** The C function that failed, e.g. `krun_add_virtiofs`. */
    readonly fn: string,
    /** The positive errno (libkrun returns `-errno`). */
    readonly errno: number,
    detail = "",
  ) {
    const code = errnoName(errno);
    super(`${fn}${detail ? ` (${detail})` : ""} failed: ${code} (-${errno})`);
    this.code = code;
  }
}

/** Name-based guard for `KrunError` (no `instanceof` across module copies, STYLE rule 11). */
export function isKrunError(x: unknown): x is KrunError {
  return typeof x === "object" && x !== null && (x as { name?: unknown }).name === "KrunError";
}

/** The library could not be loaded (missing file or missing required symbol). */
export class LibkrunLoadError extends Error {
  override name = "LibkrunLoadError";
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`cannot load libkrun from ${path}: ${reason}\nhint: install libkrun (Homebrew: brew install libkrun; Fedora: dnf install libkrun) or set AEGIS_LIBKRUN to its path, or use AEGIS_BACKEND=qemu`);
  }
}

function errnoName(n: number): string {
  return Object.entries(constants.errno).find(([, v]) => v === n)?.[0] ?? `E${n}`;
}

/** Encode `s` as a NUL-terminated C string; `what` names it in errors. Rejects NUL (and `"` when `noQuote`). */
export function cString(s: string, what: string, noQuote = false): Buffer {
  if (s.includes("\0")) throw new TypeError(`${what} ${JSON.stringify(s)} contains a NUL byte, which C strings cannot carry`);
  if (noQuote && s.includes('"')) throw new TypeError(`${what} ${JSON.stringify(s)} contains '"', which libkrun cannot pass to the guest (it quotes argv/env on the kernel command line)`);
  return Buffer.from(`${s}\0`, "utf8");
}

/**
 * Encode a NULL-terminated `char *[]`: one Buffer per item pushed to `keep`
 * (the caller holds `keep` until the C call returns), and the pointer array.
 */
export function cStringArray(items: readonly string[], what: string, keep: unknown[], noQuote = false): BigUint64Array {
  const arr = new BigUint64Array(items.length + 1);
  items.forEach((s, i) => {
    const buf = cString(s, `${what}[${i}]`, noQuote);
    keep.push(buf);
    arr[i] = BigInt(ptr(buf));
  });
  arr[items.length] = 0n;
  keep.push(arr);
  return arr;
}

function checkUint(value: number, bits: 8 | 32, what: string, min = 0): number {
  const max = 2 ** bits - 1;
  if (!Number.isInteger(value) || value < min || value > max) throw new RangeError(`${what} must be an integer in ${min}..${max} (C uint${bits}_t), got ${value}`);
  return value;
}

/** Throw `KrunError` for a negative return; pass other values through. */
function check(fn: string, rc: number, detail?: string): number {
  if (rc < 0) throw new KrunError(fn, -rc, detail);
  return rc;
}

type Required = ReturnType<typeof dlopen<typeof REQUIRED>>;

/** Open libkrun at `path` (required symbols all-or-nothing, optional ones probed). */
export function openLibkrun(path: string): Libkrun {
  let lib: Required;
  try {
    lib = dlopen(path, REQUIRED);
  } catch (err) {
    throw new LibkrunLoadError(path, err instanceof Error ? err.message : String(err));
  }
  const optional: Partial<Record<OptionalSymbol, (...args: any[]) => number>> = {};
  const closers: Array<() => void> = [() => lib.close()];
  for (const name of Object.keys(OPTIONAL) as OptionalSymbol[]) {
    try {
      const one = dlopen(path, { [name]: OPTIONAL[name] } as Pick<typeof OPTIONAL, typeof name>);
      optional[name] = (one.symbols as Record<string, (...args: any[]) => number>)[name];
      closers.push(() => one.close());
    } catch (err) {
      // Only "this symbol is not exported" means absent; anything else is a real failure.
      if (!(err instanceof TypeError && (err as NodeJS.ErrnoException).code === "ERR_INVALID_ARG_TYPE" && err.message.includes("not found"))) throw err;
    }
  }
  return new Libkrun(path, lib.symbols, optional, closers);
}

/** Typed wrappers over one loaded libkrun. Pointer arguments are owned by the wrapper and live until the call returns. */
export class Libkrun {
  constructor(
    readonly path: string,
    private readonly s: Required["symbols"],
    private readonly opt: Partial<Record<OptionalSymbol, (...args: any[]) => number>>,
    private readonly closers: Array<() => void>,
  ) {}

  /** Whether an optional symbol is exported by this library. */
  has(name: OptionalSymbol): boolean {
    return this.opt[name] !== undefined;
  }

  /** The optional symbols this library exports. */
  get optionalSymbols(): OptionalSymbol[] {
    return (Object.keys(this.opt) as OptionalSymbol[]).sort();
  }

  /** `krun_set_log_level`: 0 off .. 5 trace. */
  setLogLevel(level: number): void {
    check("krun_set_log_level", this.s.krun_set_log_level(checkUint(level, 32, "log level")));
  }

  /** `krun_create_ctx`: a new configuration context id. */
  createCtx(): number {
    return check("krun_create_ctx", this.s.krun_create_ctx());
  }

  /** `krun_free_ctx`. */
  freeCtx(ctx: number): void {
    check("krun_free_ctx", this.s.krun_free_ctx(checkUint(ctx, 32, "ctx")));
  }

  /** `krun_set_vm_config`: vCPUs are a C `uint8_t` (1..255), RAM a `uint32_t` MiB. */
  setVmConfig(ctx: number, vcpus: number, ramMib: number): void {
    check("krun_set_vm_config", this.s.krun_set_vm_config(checkUint(ctx, 32, "ctx"), checkUint(vcpus, 8, "vcpus", 1), checkUint(ramMib, 32, "ram_mib", 1)));
  }

  /** `krun_set_root`: a host directory shared (virtio-fs) as the guest's `/`. */
  setRoot(ctx: number, rootPath: string): void {
    const keep = [cString(rootPath, "root path")]; // owned here until the call returns; libkrun copies
    check("krun_set_root", this.s.krun_set_root(checkUint(ctx, 32, "ctx"), keep[0]!), rootPath);
  }

  /** `krun_add_disk` (raw image), or `krun_add_disk2` with an explicit format when `format` is given. */
  addDisk(ctx: number, blockId: string, diskPath: string, readOnly: boolean, format?: keyof typeof KRUN_DISK_FORMAT): void {
    const keep = [cString(blockId, "block id"), cString(diskPath, "disk path")]; // owned here until the call returns
    if (format === undefined) {
      check("krun_add_disk", this.s.krun_add_disk(checkUint(ctx, 32, "ctx"), keep[0]!, keep[1]!, readOnly), `${blockId}=${diskPath}`);
      return;
    }
    const add2 = this.opt.krun_add_disk2;
    if (!add2) throw new KrunError("krun_add_disk2", constants.errno.ENOSYS, `not exported by ${this.path}; needed for ${format} disk ${diskPath}`);
    check("krun_add_disk2", add2(checkUint(ctx, 32, "ctx"), keep[0]!, keep[1]!, KRUN_DISK_FORMAT[format], readOnly), `${blockId}=${diskPath}`);
  }

  /** `krun_add_virtiofs`: share host directory `hostPath` under `tag`. */
  addVirtiofs(ctx: number, tag: string, hostPath: string): void {
    const keep = [cString(tag, "virtiofs tag"), cString(hostPath, "virtiofs path")]; // owned here until the call returns
    check("krun_add_virtiofs", this.s.krun_add_virtiofs(checkUint(ctx, 32, "ctx"), keep[0]!, keep[1]!), `${tag}=${hostPath}`);
  }

  /**
   * `krun_set_exec`: the guest program, its arguments (without argv[0]) and
   * its complete environment. `env` is always passed as an explicit array,
   * empty when there is nothing to set, never NULL (NULL copies the host's).
   */
  setExec(ctx: number, execPath: string, argv: readonly string[], env: Readonly<Record<string, string>>): void {
    const keep: unknown[] = [];
    const path = cString(execPath, "exec path", true);
    keep.push(path);
    const args = cStringArray(argv, "argv", keep, true);
    const envp = cStringArray(envEntries(env), "env", keep, true);
    check("krun_set_exec", this.s.krun_set_exec(checkUint(ctx, 32, "ctx"), path, args, envp), execPath);
  }

  /** `krun_set_env`: the guest program's complete environment (explicit array, never NULL). */
  setEnv(ctx: number, env: Readonly<Record<string, string>>): void {
    const keep: unknown[] = [];
    const envp = cStringArray(envEntries(env), "env", keep, true);
    check("krun_set_env", this.s.krun_set_env(checkUint(ctx, 32, "ctx"), envp));
  }

  /** `krun_set_workdir`: working directory of the guest program (relative to the root). */
  setWorkdir(ctx: number, workdir: string): void {
    const keep = [cString(workdir, "workdir")]; // owned here until the call returns
    check("krun_set_workdir", this.s.krun_set_workdir(checkUint(ctx, 32, "ctx"), keep[0]!), workdir);
  }

  /** `krun_add_vsock_port`: guest connections to vsock `port` reach the host Unix socket `socketPath` (we listen there). */
  addVsockPort(ctx: number, port: number, socketPath: string): void {
    const keep = [cString(socketPath, "vsock socket path")]; // owned here until the call returns
    check("krun_add_vsock_port", this.s.krun_add_vsock_port(checkUint(ctx, 32, "ctx"), checkUint(port, 32, "vsock port"), keep[0]!), `${port}=${socketPath}`);
  }

  /** `krun_set_port_map`: `"host_port:guest_port"` entries; an empty list exposes nothing (NULL would expose every port). */
  setPortMap(ctx: number, map: readonly string[]): void {
    for (const m of map) if (!/^\d{1,5}:\d{1,5}$/.test(m)) throw new TypeError(`port map entry ${JSON.stringify(m)} is not "host_port:guest_port"`);
    const keep: unknown[] = [];
    const arr = cStringArray(map, "port_map", keep);
    check("krun_set_port_map", this.s.krun_set_port_map(checkUint(ctx, 32, "ctx"), arr));
  }

  /** `krun_set_console_output` (optional symbol): console to `filePath`, stdin ignored. Throws `KrunError(ENOSYS)` when absent. */
  setConsoleOutput(ctx: number, filePath: string): void {
    const fn = this.opt.krun_set_console_output;
    if (!fn) throw new KrunError("krun_set_console_output", constants.errno.ENOSYS, `not exported by ${this.path}`);
    const keep = [cString(filePath, "console output path")]; // owned here until the call returns
    check("krun_set_console_output", fn(checkUint(ctx, 32, "ctx"), keep[0]!), filePath);
  }

  /** `krun_has_feature` (optional symbol): true/false, or undefined when the library cannot say. */
  hasFeature(feature: number | bigint): boolean | undefined {
    const fn = this.opt.krun_has_feature;
    if (!fn) return undefined;
    const f = BigInt(feature);
    if (f < 0n || f > 0xffff_ffff_ffff_ffffn) throw new RangeError(`feature must fit a C uint64_t, got ${f}`);
    return check("krun_has_feature", fn(f)) === 1;
  }

  /** `krun_get_max_vcpus` (optional symbol), or undefined when absent. */
  maxVcpus(): number | undefined {
    const fn = this.opt.krun_get_max_vcpus;
    return fn ? check("krun_get_max_vcpus", fn()) : undefined;
  }

  /**
   * `krun_start_enter`: boot the VM. On success it never returns (libkrun
   * calls `exit()` with the guest workload's code when the VM ends); a
   * return means a configuration error, thrown as `KrunError`.
   */
  startEnter(ctx: number): never {
    const rc = this.s.krun_start_enter(checkUint(ctx, 32, "ctx"));
    throw new KrunError("krun_start_enter", rc < 0 ? -rc : constants.errno.EINVAL, rc < 0 ? "" : `returned ${rc} instead of taking over the process`);
  }

  /** Unload the library handles (not after `startEnter`). */
  close(): void {
    for (const c of this.closers) c();
  }
}

/** `KEY=VALUE` entries in a stable order; rejects keys that cannot be environment names. */
export function envEntries(env: Readonly<Record<string, string>>): string[] {
  return Object.keys(env)
    .sort()
    .map((k) => {
      if (!k || k.includes("=")) throw new TypeError(`environment name ${JSON.stringify(k)} is empty or contains '='`);
      return `${k}=${env[k]}`;
    });
}

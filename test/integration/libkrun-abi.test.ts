/**
 * ABI contract test of our libkrun binding (ffi/libkrun.ts), the
 * aegis-vmm-worker role and the libkrun backend.
 *
 * WHAT THIS CHECKS: our side of the C boundary only. It compiles, with the
 * machine's `cc`, a stub shared library exporting the `krun_*` symbols with
 * the signatures of libkrun's include/libkrun.h; every call appends a line
 * with its arguments to a log (strings hex-encoded with their strlen, string
 * arrays walked up to their NULL terminator, integers printed at their C
 * width). The test points AEGIS_LIBKRUN / the worker config at it and asserts
 * what arrived: string contents, array lengths and termination, integer
 * widths at the C types' limits, return-code handling and the error path.
 *
 * WHAT IT DOES NOT CHECK: libkrun itself. libkrun cannot be installed on
 * these machines and never ran here; no VM boots in this test. The stub's
 * `krun_start_enter` either exits the process with a chosen code, returns a
 * negative errno, or plays a fake guest on the vsock Unix socket (sends the
 * harness's `ready`, answers `ping` and `shutdown`) so the backend's boot and
 * stop path can be driven end to end.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isKrunError, KrunError, openLibkrun, type Libkrun } from "../../ffi/libkrun.ts";
import { CONTROL_VSOCK_PORT } from "../../src/api/schema/control.ts";
import { LibkrunBackend } from "../../src/vmm/libkrun.ts";
import { isLibkrunUnsupported } from "../../src/vmm/libkrun-vm.ts";
import { workerConfig, type KrunWorkerConfig } from "../../src/vmm/libkrun-config.ts";
import { probeLibkrun, selectBackend } from "../../src/vmm/select.ts";
import { compileStub } from "./libkrun-stub.ts";

const repo = join(import.meta.dir, "..", "..");


let dir = "";
let stub = "";
let brokenStub = "";

/** One recorded call: the function name and its `key=value` arguments, decoded. */
interface Call {
  fn: string;
  args: Record<string, string | string[] | number | null>;
}

function decodeHex(h: string): string {
  return Buffer.from(h, "hex").toString("utf8");
}

function calls(): Call[] {
  let text = "";
  try {
    text = readFileSync(join(dir, "calls.log"), "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  return text
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const [fn, ...rest] = line.split(" ");
      const args: Call["args"] = {};
      for (const kv of rest) {
        const eq = kv.indexOf("=");
        const k = kv.slice(0, eq);
        const v = kv.slice(eq + 1);
        if (v === "null" || v === "unterminated") args[k] = v === "null" ? null : "UNTERMINATED";
        else if (/^s\d+:/.test(v)) {
          const [len, hex] = [Number(v.slice(1, v.indexOf(":"))), v.slice(v.indexOf(":") + 1)];
          const s = decodeHex(hex);
          expect(Buffer.byteLength(s)).toBe(len); // the C strlen matches the bytes we meant: NUL right after the string
          args[k] = s;
        } else if (/^a\d+:/.test(v)) {
          const n = Number(v.slice(1, v.indexOf(":")));
          const body = v.slice(v.indexOf(":") + 1);
          const items = n === 0 ? [] : body.split(",").map(decodeHex);
          expect(items.length).toBe(n);
          args[k] = items;
        } else args[k] = Number(v);
      }
      return { fn: fn!, args };
    });
}

function reset(behaviour = ""): void {
  rmSync(join(dir, "calls.log"), { force: true });
  writeFileSync(join(dir, "behaviour"), behaviour);
}

async function compile(out: string, extra: string[] = []): Promise<void> {
  await compileStub(dir, out, extra);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "krun-abi-"));
  stub = join(dir, "libkrun-stub.so");
  brokenStub = join(dir, "libkrun-broken.so");
  await compile(stub);
  await compile(brokenStub, ["-DOMIT_PORT_MAP"]);
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("ffi/libkrun against the stub library (our side of the ABI only)", () => {
  let lib: Libkrun;
  beforeAll(() => {
    lib = openLibkrun(stub);
  });
  afterAll(() => lib.close());

  it("binds the required symbols in one dlopen and probes the optional ones separately", () => {
    expect(lib.optionalSymbols).toEqual(["krun_get_max_vcpus", "krun_has_feature", "krun_set_console_output"]);
    expect(lib.has("krun_add_disk2")).toBe(false);
    expect(lib.maxVcpus()).toBe(16);
  });

  it("refuses a library that lacks a required symbol (all-or-nothing)", () => {
    expect(() => openLibkrun(brokenStub)).toThrow(/krun_set_port_map/);
  });

  it("passes strings NUL-terminated with exact contents, and integers at their C widths", () => {
    reset();
    const ctx = lib.createCtx();
    lib.setVmConfig(ctx, 255, 0xffff_ffff);
    lib.setVmConfig(ctx, 1, 512);
    lib.setRoot(ctx, "/tmp/röot with space");
    lib.addDisk(ctx, "aegis-root", "/imgs/root.ext4", true);
    lib.addDisk(ctx, "aegis-overlay", "/imgs/ovl.ext4", false);
    lib.addVirtiofs(ctx, "workspace", "/home/u/ws");
    lib.addVsockPort(ctx, 0xffff_ffff, "/run/ctl.sock");
    lib.setWorkdir(ctx, "/");
    lib.setConsoleOutput(ctx, "/run/console.log");
    expect(lib.hasFeature(2n ** 40n)).toBe(false);
    expect(lib.hasFeature(1)).toBe(true);
    expect(calls()).toEqual([
      { fn: "krun_create_ctx", args: {} },
      { fn: "krun_set_vm_config", args: { ctx: 7, vcpus: 255, ram: 4294967295 } },
      { fn: "krun_set_vm_config", args: { ctx: 7, vcpus: 1, ram: 512 } },
      { fn: "krun_set_root", args: { ctx: 7, path: "/tmp/röot with space" } },
      { fn: "krun_add_disk", args: { ctx: 7, id: "aegis-root", path: "/imgs/root.ext4", ro: 1 } },
      { fn: "krun_add_disk", args: { ctx: 7, id: "aegis-overlay", path: "/imgs/ovl.ext4", ro: 0 } },
      { fn: "krun_add_virtiofs", args: { ctx: 7, tag: "workspace", path: "/home/u/ws" } },
      { fn: "krun_add_vsock_port", args: { ctx: 7, port: 4294967295, path: "/run/ctl.sock" } },
      { fn: "krun_set_workdir", args: { ctx: 7, path: "/" } },
      { fn: "krun_set_console_output", args: { ctx: 7, path: "/run/console.log" } },
      // uint64_t: 2^40 arrives intact (a u32 declaration would have truncated it to 0)
      { fn: "krun_has_feature", args: { feature: 1099511627776 } },
      { fn: "krun_has_feature", args: { feature: 1 } },
    ]);
  });

  it("passes argv, envp and the port map as NULL-terminated arrays, and an empty env as an empty array, never NULL", () => {
    reset();
    lib.setExec(7, "/tools/aegis", ["__harness", "x y"], { B: "2", A: "1=one" });
    lib.setExec(7, "/bin/true", [], {});
    lib.setEnv(7, { ONLY: "me" });
    lib.setEnv(7, {});
    lib.setPortMap(7, ["8080:80", "2222:22"]);
    lib.setPortMap(7, []);
    expect(calls()).toEqual([
      { fn: "krun_set_exec", args: { ctx: 7, path: "/tools/aegis", argv: ["__harness", "x y"], envp: ["A=1=one", "B=2"] } },
      { fn: "krun_set_exec", args: { ctx: 7, path: "/bin/true", argv: [], envp: [] } },
      { fn: "krun_set_env", args: { ctx: 7, envp: ["ONLY=me"] } },
      { fn: "krun_set_env", args: { ctx: 7, envp: [] } },
      { fn: "krun_set_port_map", args: { ctx: 7, map: ["8080:80", "2222:22"] } },
      { fn: "krun_set_port_map", args: { ctx: 7, map: [] } },
    ]);
  });

  it("rejects values C cannot carry before calling (no call is recorded)", () => {
    reset();
    expect(() => lib.setVmConfig(7, 256, 512)).toThrow(RangeError);
    expect(() => lib.setVmConfig(7, 0, 512)).toThrow(RangeError);
    expect(() => lib.setVmConfig(7, 2, 2 ** 32)).toThrow(RangeError);
    expect(() => lib.setRoot(7, "/a\0b")).toThrow(/NUL/);
    expect(() => lib.setExec(7, "/bin/sh", ['say "hi"'], {})).toThrow(/'"'/);
    expect(() => lib.setExec(7, "/bin/sh", [], { K: 'v"' })).toThrow(/'"'/);
    expect(() => lib.setExec(7, "/bin/sh", [], { "A=B": "v" })).toThrow(/contains '='/);
    expect(() => lib.setPortMap(7, ["80"])).toThrow(/host_port:guest_port/);
    expect(() => lib.addDisk(7, "q", "/q.qcow2", true, "qcow2")).toThrow(/krun_add_disk2/);
    expect(calls()).toEqual([]);
  });

  it("turns a negative return into KrunError { fn, errno, code }", () => {
    reset("fail krun_add_virtiofs -2\nfail krun_create_ctx -12\nstart return -22\n");
    let err: unknown;
    try {
      lib.addVirtiofs(7, "workspace", "/nope");
    } catch (e) {
      err = e;
    }
    expect(isKrunError(err)).toBe(true);
    expect(err).toMatchObject({ name: "KrunError", fn: "krun_add_virtiofs", errno: 2, code: "ENOENT" });
    expect(() => lib.createCtx()).toThrow(new KrunError("krun_create_ctx", 12));
    expect(() => lib.startEnter(7)).toThrow(/krun_start_enter failed: EINVAL \(-22\)/);
    expect(calls().map((c) => c.fn)).toEqual(["krun_add_virtiofs", "krun_create_ctx", "krun_start_enter"]);
  });
});

function cfgFor(runDir: string, overrides: Partial<KrunWorkerConfig> = {}): KrunWorkerConfig {
  mkdirSync(runDir, { recursive: true });
  return {
    ...workerConfig(
      { id: "vm-abi", runDir, memoryMb: 768, vcpus: 3, ports: [{ hostPort: 18080, guestPort: 80 }], hostname: "abi-host", workspace: "/srv/ws", overlayDisk: join(runDir, "ovl.ext4") },
      { library: stub, rootDir: "/srv/krun-root", baseRootfs: "/srv/base.ext4", paths: { ctl: join(runDir, "ctl.sock"), console: join(runDir, "console.log"), workerLog: join(runDir, "worker.log") } },
    ),
    ...overrides,
  };
}

async function runWorker(input: string, args: string[] = []): Promise<{ code: number; stderr: string }> {
  const proc = Bun.spawn([process.execPath, join(repo, "src", "main.ts"), "__vmm", ...args], { stdin: "pipe", stdout: "pipe", stderr: "pipe", env: { PATH: process.env.PATH ?? "/usr/bin:/bin" } });
  proc.stdin.write(input);
  await proc.stdin.end();
  const [, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stderr };
}

describe("aegis-vmm-worker (aegis __vmm) against the stub library", () => {
  it("applies a full VM configuration read from stdin, in order, then enters the VM (whose exit code becomes the worker's)", async () => {
    reset("start exit 42\n");
    const runDir = join(dir, "run-ok");
    const { code, stderr } = await runWorker(JSON.stringify(cfgFor(runDir)), ["--run-dir", runDir]);
    expect({ code, stderr }).toMatchObject({ code: 42 });
    expect(calls()).toEqual([
      { fn: "krun_set_log_level", args: { level: 1 } },
      { fn: "krun_create_ctx", args: {} },
      { fn: "krun_set_vm_config", args: { ctx: 7, vcpus: 3, ram: 768 } },
      { fn: "krun_set_root", args: { ctx: 7, path: "/srv/krun-root" } },
      { fn: "krun_add_disk", args: { ctx: 7, id: "aegis-root", path: "/srv/base.ext4", ro: 1 } },
      { fn: "krun_add_disk", args: { ctx: 7, id: "aegis-overlay", path: join(runDir, "ovl.ext4"), ro: 0 } },
      { fn: "krun_add_virtiofs", args: { ctx: 7, tag: "workspace", path: "/srv/ws" } },
      { fn: "krun_add_vsock_port", args: { ctx: 7, port: CONTROL_VSOCK_PORT, path: join(runDir, "ctl.sock") } },
      { fn: "krun_set_port_map", args: { ctx: 7, map: ["18080:80"] } },
      { fn: "krun_set_workdir", args: { ctx: 7, path: "/" } },
      {
        fn: "krun_set_exec",
        args: { ctx: 7, path: "/tools/aegis", argv: ["__harness"], envp: ["AEGIS_DISKS=aegis-root,aegis-overlay", "AEGIS_HARNESS_INIT=1", "AEGIS_HOSTNAME=abi-host", "AEGIS_WORKSPACE=1", "PATH=/bin:/sbin:/usr/bin:/usr/sbin"] },
      },
      { fn: "krun_set_console_output", args: { ctx: 7, path: join(runDir, "console.log") } },
      { fn: "krun_start_enter", args: { ctx: 7 } },
    ]);
  });

  it("exits 4 naming the failing C function and errno, after freeing the context, without entering the VM", async () => {
    reset("fail krun_add_virtiofs -2\n");
    const { code, stderr } = await runWorker(JSON.stringify(cfgFor(join(dir, "run-fail"))));
    expect(code).toBe(4);
    expect(stderr).toContain("krun_add_virtiofs (workspace=/srv/ws) failed: ENOENT (-2)");
    const fns = calls().map((c) => c.fn);
    expect(fns.slice(-2)).toEqual(["krun_add_virtiofs", "krun_free_ctx"]);
    expect(fns).not.toContain("krun_start_enter");
  });

  it("reports krun_start_enter returning a negative errno (a configuration libkrun rejects) with exit 4", async () => {
    reset("start return -22\n");
    const { code, stderr } = await runWorker(JSON.stringify(cfgFor(join(dir, "run-einval"))));
    expect(code).toBe(4);
    expect(stderr).toContain("krun_start_enter failed: EINVAL (-22)");
  });

  it("refuses an invalid configuration (exit 2) and a library without the required symbols (exit 3)", async () => {
    reset("start exit 0\n");
    const bad = await runWorker(JSON.stringify({ ...cfgFor(join(dir, "run-bad")), vcpus: 300 }));
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("vcpus");
    const unknown = await runWorker(JSON.stringify({ ...cfgFor(join(dir, "run-bad")), secret: "x" }));
    expect(unknown.code).toBe(2);
    const broken = await runWorker(JSON.stringify(cfgFor(join(dir, "run-bad"), { library: brokenStub })));
    expect(broken.code).toBe(3);
    expect(broken.stderr).toContain("krun_set_port_map");
    expect(calls()).toEqual([]);
  });

  it("reads a --config file only when it is private (0600)", async () => {
    reset("start exit 7\n");
    const file = join(dir, "cfg.json");
    writeFileSync(file, JSON.stringify(cfgFor(join(dir, "run-file"))), { mode: 0o644 });
    const open = await runWorker("", ["--config", file]);
    expect(open.code).toBe(2);
    expect(open.stderr).toContain("must be 0600");
    rmSync(file);
    writeFileSync(file, JSON.stringify(cfgFor(join(dir, "run-file"))), { mode: 0o600 });
    expect((await runWorker("", ["--config", file])).code).toBe(7);
  });
});

describe("backend selection and the libkrun backend, with AEGIS_LIBKRUN pointing at the stub", () => {
  it("defaults to libkrun when the library loads, and says why", () => {
    const sel = selectBackend({ env: { AEGIS_LIBKRUN: stub } });
    expect(sel.name).toBe("libkrun");
    expect(sel.reason).toContain(`libkrun loads from ${stub}`);
    expect(sel.capabilities).toMatchObject({ pauseResume: false, memorySnapshots: false, diskLayers: true });
  });

  it("makes a forced libkrun that does not load an error naming the missing symbol", () => {
    expect(() => selectBackend({ env: { AEGIS_BACKEND: "libkrun", AEGIS_LIBKRUN: brokenStub } })).toThrow(/AEGIS_BACKEND=libkrun: libkrun at .* does not load: .*krun_set_port_map/);
  });

  it("boots through the worker, gets ready over the vsock-mapped socket, answers RPCs and stops cleanly", async () => {
    reset("start guest\n");
    const probe = probeLibkrun({ AEGIS_LIBKRUN: stub });
    if (!probe.ok) throw new Error(probe.reason);
    const root = join(dir, "krun-root");
    mkdirSync(root, { recursive: true });
    writeFileSync(join(dir, "base.ext4"), "");
    const backend = new LibkrunBackend({ library: probe.path, guest: { rootDir: root, baseRootfs: join(dir, "base.ext4") }, bootTimeoutMs: 15_000 });
    const runDir = join(dir, "run-boot");
    const vm = await backend.boot({ id: "vm-boot", runDir, memoryMb: 256, vcpus: 1, ports: [], hostname: "h" });
    const exited = vm.exited;
    try {
      expect(await vm.channel.call("ping", undefined, { timeoutMs: 5000 })).toEqual({ uptime_ms: 5 });
      const paused = await vm.pause().then(() => null, (e: unknown) => e);
      expect(isLibkrunUnsupported(paused)).toBe(true);
      await vm.stop(5000);
      expect(await exited).toBe(0);
    } finally {
      vm.kill();
    }
    const vsock = calls().find((c) => c.fn === "krun_add_vsock_port");
    expect(vsock?.args).toEqual({ ctx: 7, port: CONTROL_VSOCK_PORT, path: join(runDir, "ctl.sock") });
    expect(calls().find((c) => c.fn === "krun_set_exec")?.args.envp).toEqual(["AEGIS_DISKS=aegis-root", "AEGIS_HARNESS_INIT=1", "AEGIS_HOSTNAME=h", "PATH=/bin:/sbin:/usr/bin:/usr/sbin"]);
  }, 30_000);
});

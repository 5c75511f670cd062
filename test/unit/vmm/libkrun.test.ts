import { describe, expect, it } from "bun:test";
import { mkdtempSync, readFileSync, readlinkSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeCpio } from "../../../src/vmm/assets/cpio.ts";
import { CONTROL_VSOCK_PORT } from "../../../src/api/schema/control.ts";
import { KrunWorkerConfig, workerConfig } from "../../../src/vmm/libkrun-config.ts";
import { readCpio, unpackCpio } from "../../../src/vmm/libkrun-root.ts";
import { isLibkrunUnsupported, LibkrunUnsupportedError } from "../../../src/vmm/libkrun-vm.ts";
import { isWorkerOf, krunPaths } from "../../../src/vmm/libkrun.ts";
import { parseWorkerArgs, parseWorkerConfig } from "../../../src/vmm/worker-main.ts";
import { BackendUnavailableError, chooseBackend, type LibkrunProbe } from "../../../src/vmm/select.ts";

const loads: LibkrunProbe = { ok: true, path: "/usr/lib64/libkrun.so.1", optional: [] };
const absent: LibkrunProbe = { ok: false, path: null, reason: "libkrun not found (searched 11 paths)" };
const broken: LibkrunProbe = { ok: false, path: "/x/libkrun.so", reason: "libkrun at /x/libkrun.so does not load: Symbol \"krun_add_disk\" not found" };

describe("chooseBackend", () => {
  it("prefers libkrun when it loads and says where it came from", () => {
    expect(chooseBackend(undefined, loads, "/usr/bin/qemu-system-x86_64")).toEqual({ name: "libkrun", reason: "libkrun loads from /usr/lib64/libkrun.so.1; using libkrun (set AEGIS_BACKEND=qemu for QEMU)" });
  });

  it("falls back to QEMU with the reason libkrun was not used", () => {
    expect(chooseBackend(undefined, absent, "/usr/bin/qemu-system-x86_64").reason).toBe("libkrun not found (searched 11 paths); using QEMU (/usr/bin/qemu-system-x86_64)");
    expect(chooseBackend("", broken, "/q").reason).toContain("does not load");
  });

  it("reports none when neither is available", () => {
    expect(chooseBackend(undefined, absent, null).name).toBe("none");
  });

  it("honours AEGIS_BACKEND=qemu even where libkrun loads", () => {
    expect(chooseBackend("qemu", loads, "/q")).toEqual({ name: "qemu", reason: "AEGIS_BACKEND=qemu: using QEMU (/q)" });
  });

  it("makes a forced libkrun that does not load an error, never a silent fallback", () => {
    expect(() => chooseBackend("libkrun", broken, "/q")).toThrow(BackendUnavailableError);
    expect(() => chooseBackend("libkrun", absent, "/q")).toThrow(/AEGIS_BACKEND=libkrun: libkrun not found.*\nhint: /s);
    expect(chooseBackend("libkrun", loads, "/q").name).toBe("libkrun");
  });

  it("rejects an unknown AEGIS_BACKEND and a forced QEMU that is missing", () => {
    expect(() => chooseBackend("firecracker", loads, "/q")).toThrow(/AEGIS_BACKEND=firecracker: unknown backend/);
    expect(() => chooseBackend("qemu", loads, null)).toThrow(/not found on PATH/);
  });
});

describe("workerConfig", () => {
  const paths = { ctl: "/r/ctl.sock", console: "/r/console.log", workerLog: "/r/worker.log" };

  it("maps a spec to disks, shares, the vsock control port, ports and a non-secret env", () => {
    const cfg = workerConfig(
      { id: "i1", runDir: "/r", memoryMb: 1024, vcpus: 2, rootfs: "/img.ext4", overlayDisk: "/r/ovl.ext4", ports: [{ hostPort: 8080, guestPort: 80 }], workspace: "/ws", hostname: "box" },
      { library: "/lib/libkrun.so", rootDir: "/root", baseRootfs: "/base.ext4", paths },
    );
    expect(KrunWorkerConfig.parse(cfg)).toEqual(cfg);
    expect(cfg.disks).toEqual([{ blockId: "aegis-root", path: "/img.ext4", readOnly: true }, { blockId: "aegis-overlay", path: "/r/ovl.ext4", readOnly: false }]);
    expect(cfg.virtiofs).toEqual([{ tag: "workspace", path: "/ws" }]);
    expect(cfg.vsock).toEqual([{ port: CONTROL_VSOCK_PORT, socket: "/r/ctl.sock" }]);
    expect(cfg.portMap).toEqual(["8080:80"]);
    expect(cfg.exec).toEqual({ path: "/tools/aegis", argv: ["__harness"], env: { PATH: "/bin:/sbin:/usr/bin:/usr/sbin", AEGIS_HARNESS_INIT: "1", AEGIS_HOSTNAME: "box", AEGIS_WORKSPACE: "1", AEGIS_DISKS: "aegis-root,aegis-overlay" } });
  });

  it("uses the base image and no share when the spec has neither rootfs nor workspace", () => {
    const cfg = workerConfig({ id: "i2", runDir: "/r", memoryMb: 256, vcpus: 1, ports: [], hostname: "h" }, { library: "/l", rootDir: "/root", baseRootfs: "/base.ext4", paths });
    expect(cfg.disks).toEqual([{ blockId: "aegis-root", path: "/base.ext4", readOnly: true }]);
    expect(cfg.virtiofs).toEqual([]);
    expect(cfg.exec.env.AEGIS_WORKSPACE).toBeUndefined();
  });
});

describe("worker arguments and configuration", () => {
  it("accepts only --config and --run-dir", () => {
    expect(parseWorkerArgs(["--run-dir", "/r", "--config", "/c.json"])).toEqual({ runDir: "/r", configFile: "/c.json" });
    expect(() => parseWorkerArgs(["--memory", "512"])).toThrow(/unknown argument --memory/);
    expect(() => parseWorkerArgs(["--config"])).toThrow(/needs a value/);
  });

  it("rejects unparsable JSON and unknown keys with exit code 2", () => {
    expect(() => parseWorkerConfig("{", "stdin")).toThrow(expect.objectContaining({ exitCode: 2 }));
    expect(() => parseWorkerConfig(JSON.stringify({ v: 1, extra: true }), "stdin")).toThrow(/configuration from stdin is invalid/);
  });
});

describe("libkrun root from the initramfs archive", () => {
  it("unpacks directories, files with their modes and symlinks, and skips device nodes", () => {
    const archive = writeCpio([
      { type: "dir", path: "bin" },
      { type: "file", path: "bin/busybox", data: new TextEncoder().encode("BB"), mode: 0o755 },
      { type: "symlink", path: "bin/sh", target: "busybox" },
      { type: "char", path: "dev/console", major: 5, minor: 1 },
    ]);
    const members = readCpio(archive);
    expect(members.map((m) => m.path)).toEqual(["bin", "bin/busybox", "bin/sh", "dev/console"]);
    const dir = mkdtempSync(join(tmpdir(), "krun-root-"));
    try {
      unpackCpio(members, dir);
      expect(readFileSync(join(dir, "bin/busybox"), "utf8")).toBe("BB");
      expect(statSync(join(dir, "bin/busybox")).mode & 0o777).toBe(0o755);
      expect(readlinkSync(join(dir, "bin/sh"))).toBe("busybox");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses members that escape the target directory", () => {
    expect(() => unpackCpio([{ path: "../evil", mode: 0o100644, data: new Uint8Array() }], "/tmp/x")).toThrow(/escapes/);
  });

  it("refuses an archive that is not newc", () => {
    expect(() => readCpio(new TextEncoder().encode("x".repeat(200)))).toThrow(/bad magic/);
  });
});

describe("LibkrunUnsupportedError", () => {
  it("names the VM and the operation, with a hint, and has a name-based guard", () => {
    const e = new LibkrunUnsupportedError("i1", "snapshot");
    expect(e.message).toMatch(/cannot snapshot VM i1: the libkrun backend does not support memory snapshots\nhint: /);
    expect(e.code).toBe("backend_unsupported");
    expect(isLibkrunUnsupported(e)).toBe(true);
  });
});

describe("recognising a libkrun worker (live restore)", () => {
  it("takes a pid for the worker of a run directory only when its argv has --run-dir followed by exactly that directory", async () => {
    // bash -c keeps the argv after the script whole, as the worker's own argv is.
    const worker = Bun.spawn(["bash", "-c", "sleep 30; :", "__vmm", "--run-dir", "/r/instances/a"], { stdout: "ignore", stderr: "ignore" });
    try {
      // Right after the fork /proc shows the parent's argv until the exec.
      for (let i = 0; i < 200 && !readFileSync(`/proc/${worker.pid}/cmdline`, "utf8").startsWith("bash"); i++) await Bun.sleep(10);
      expect(isWorkerOf(worker.pid, "/r/instances/a")).toBe(true);
      expect(isWorkerOf(worker.pid, "/r/instances/ab")).toBe(false);
      expect(isWorkerOf(worker.pid, "/r/instances")).toBe(false);
      expect(isWorkerOf(process.pid, "/r/instances/a")).toBe(false);
    } finally {
      worker.kill();
      await worker.exited;
    }
    expect(isWorkerOf(worker.pid, "/r/instances/a")).toBe(false); // gone (reaped): no /proc entry
  });

  it("keeps the control socket and the seq file in the run directory", () => {
    expect(krunPaths("/r/x")).toEqual({ ctl: "/r/x/ctl.sock", console: "/r/x/console.log", workerLog: "/r/x/worker.log", seq: "/r/x/ctl.seq" });
  });
});

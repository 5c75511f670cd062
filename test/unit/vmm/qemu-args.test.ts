import { describe, expect, it } from "bun:test";
import { buildQemuArgs, kernelCmdline, type QemuArgsInput } from "../../../src/vmm/qemu-args.ts";
import { restoreUri } from "../../../src/vmm/qemu.ts";

const base: QemuArgsInput = {
  arch: "x86_64",
  accel: "tcg",
  tscKhz: 2596118,
  memoryMb: 512,
  vcpus: 1,
  kernel: "/g/vmlinuz",
  initrd: "/g/initrd.cpio.gz",
  toolsDisk: "/g/tools.ext4",
  rootfs: "/img/root.ext4",
  ports: [{ hostPort: 8080, guestPort: 80 }],
  hostname: "task-1",
  serialLog: "/run/x/console.log",
  controlSocket: "/run/x/ctl.sock",
  qmpSocket: "/run/x/qmp.sock",
};

function opt(args: string[], flag: string): string[] {
  return args.flatMap((a, i) => (a === flag ? [args[i + 1]!] : []));
}

describe("buildQemuArgs", () => {
  it("uses microvm, -cpu max with TCG, a bounded TB cache and no defaults", () => {
    const a = buildQemuArgs(base);
    expect(opt(a, "-M")).toEqual(["microvm,memory-backend=mem0"]);
    expect(opt(a, "-cpu")).toEqual(["max"]);
    expect(opt(a, "-accel")).toEqual(["tcg,tb-size=32"]);
    for (const f of ["-nodefaults", "-no-user-config", "-no-reboot"]) expect(a).toContain(f);
    expect(opt(a, "-display")).toEqual(["none"]);
  });

  it("uses -cpu host with KVM and omits tsc_early_khz", () => {
    const a = buildQemuArgs({ ...base, accel: "kvm" });
    expect(opt(a, "-cpu")).toEqual(["host"]);
    expect(opt(a, "-accel")).toEqual(["kvm"]);
    expect(opt(a, "-append")[0]).not.toContain("tsc_early_khz");
  });

  it("puts tsc_early_khz and the hostname on the kernel command line, nothing else of the task", () => {
    const cmd = kernelCmdline(base);
    expect(cmd).toContain("tsc_early_khz=2596118");
    expect(cmd).toContain("aegis.hostname=task-1");
    expect(cmd).toContain("panic=-1");
    expect(cmd).toContain("aegis.nojit=1");
    expect(kernelCmdline({ ...base, accel: "kvm" })).not.toContain("aegis.nojit");
    expect(cmd).not.toContain("aegis.workspace");
    expect(cmd).not.toContain("aegis.defer");
    expect(kernelCmdline({ ...base, deferSetup: true })).toContain("aegis.defer=1");
  });

  it("attaches the tools and rootfs disks read-only with their serials, modern virtio-mmio and the control port", () => {
    const a = buildQemuArgs(base).join(" ");
    expect(a).toContain("id=tools,file=/g/tools.ext4,format=raw,if=none,readonly=on");
    expect(a).toContain("virtio-blk-device,drive=tools,serial=aegis-tools");
    expect(a).toContain("id=root,file=/img/root.ext4,format=raw,if=none,readonly=on");
    expect(a).toContain("serial=aegis-root");
    expect(a).toContain("virtio-mmio.force-legacy=false");
    expect(a).toContain("socket,id=ctl,path=/run/x/ctl.sock,reconnect=1");
    expect(a).not.toContain("server=on,wait=off -device virtserialport"); // the control socket is a client
    expect(a).toContain("virtserialport,chardev=ctl,name=aegis.control");
    expect(a).toContain("unix:/run/x/qmp.sock,server=on,wait=off");
  });

  it("forwards ports on 127.0.0.1 through user networking", () => {
    const a = buildQemuArgs({ ...base, ports: [{ hostPort: 8080, guestPort: 80 }, { hostPort: 9000, guestPort: 9001 }] });
    expect(opt(a, "-netdev")).toEqual(["user,id=n0,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=tcp:127.0.0.1:9000-:9001"]);
  });

  it("shares a host-directory rootfs as virtiofs tag aegis-root and tells the harness so", () => {
    const a = buildQemuArgs({ ...base, virtiofsSocket: "/run/x/vfs.sock", virtiofsTag: "aegis-root" });
    expect(a.join(" ")).toContain("vhost-user-fs-device,chardev=vfs,tag=aegis-root");
    expect(opt(a, "-append")[0]).toContain("aegis.rootfs=virtiofs");
    expect(opt(a, "-append")[0]).not.toContain("aegis.workspace=1");
  });

  it("adds a writable overlay disk, virtiofs with a shared memfd backend, and -incoming when asked", () => {
    const a = buildQemuArgs({ ...base, overlayDisk: "/i/overlay.ext4", virtiofsSocket: "/run/x/vfs.sock", incoming: "exec:cat /s" });
    const j = a.join(" ");
    expect(opt(a, "-drive")).toContain("id=overlay,file=/i/overlay.ext4,format=raw,if=none"); // writable: no readonly=on
    expect(j).toContain("virtio-blk-device,drive=overlay,serial=aegis-overlay");
    expect(opt(a, "-M")).toEqual(["microvm,memory-backend=mem0"]);
    expect(j).toContain("memory-backend-memfd,id=mem0,size=512M,share=on");
    expect(j).toContain("vhost-user-fs-device,chardev=vfs,tag=workspace");
    expect(opt(a, "-incoming")).toEqual(["exec:cat /s"]);
    expect(opt(buildQemuArgs({ ...base, virtiofsSocket: "/run/x/vfs.sock" }), "-append")[0]).toContain("aegis.workspace=1");
  });

  it("boots the kernel with -kernel/-initrd/-append but leaves them out of an x86 restore, whose kernel is in the restored RAM", () => {
    const boot = buildQemuArgs(base);
    expect(opt(boot, "-kernel")).toEqual(["/g/vmlinuz"]);
    expect(opt(boot, "-initrd")).toEqual(["/g/initrd.cpio.gz"]);
    expect(opt(boot, "-append")).toEqual([kernelCmdline(base)]);
    for (const incoming of ["defer", "exec:cat /s"]) {
      const a = buildQemuArgs({ ...base, incoming, memoryFile: { path: "/t/k.ram", shared: false } });
      for (const f of ["-kernel", "-initrd", "-append"]) expect(a).not.toContain(f);
      expect(opt(a, "-incoming")).toEqual([incoming]);
    }
    // aarch64 (virt) keeps them: not checked there.
    expect(opt(buildQemuArgs({ ...base, arch: "aarch64", incoming: "defer" }), "-kernel")).toEqual(["/g/vmlinuz"]);
    // What the command line validates is still validated for a restore.
    expect(() => buildQemuArgs({ ...base, incoming: "defer", hostname: "a b" })).toThrow(/hostname/);
  });

  it("attaches no overlay disk and no shared memory backend unless asked", () => {
    const a = buildQemuArgs(base);
    const j = a.join(" ");
    expect(j).not.toContain("aegis-overlay");
    // Always the named anonymous backend, so the migration block is `mem0` whatever backs it.
    expect(opt(a, "-M")).toEqual(["microvm,memory-backend=mem0"]);
    expect(opt(a, "-object")).toEqual(["memory-backend-ram,id=mem0,size=512M"]);
    expect(j).not.toContain("-incoming");
  });

  it("backs RAM with a template memory file: shared to build it, copy-on-write to start from it", () => {
    expect(opt(buildQemuArgs({ ...base, memoryFile: { path: "/t/k.ram", shared: true } }), "-object")).toEqual(["memory-backend-file,id=mem0,size=512M,mem-path=/t/k.ram,share=on"]);
    expect(opt(buildQemuArgs({ ...base, memoryFile: { path: "/t/k.ram", shared: false } }), "-object")).toEqual(["memory-backend-file,id=mem0,size=512M,mem-path=/t/k.ram,share=off"]);
    expect(() => buildQemuArgs({ ...base, memoryFile: { path: "/t/a,b.ram", shared: false } })).toThrow(/comma/);
    expect(() => buildQemuArgs({ ...base, virtiofsSocket: "/v.sock", memoryFile: { path: "/t/k.ram", shared: false } })).toThrow(/memfd/);
  });

  it("rejects hostnames and paths that would break the command line", () => {
    expect(() => buildQemuArgs({ ...base, hostname: "a b" })).toThrow(/hostname/);
    expect(() => buildQemuArgs({ ...base, rootfs: "/x,y.ext4" })).toThrow(/comma/);
  });

  it("quotes zstd snapshot paths for QEMU's exec: incoming migration, and gives it an uncompressed one as fd 3", () => {
    expect(restoreUri("/s/it's.zst")).toBe("exec:zstd -dc '/s/it'\\''s.zst'");
    expect(restoreUri("/s/a.bin")).toBe("fd:3");
    expect(restoreUri("/s/it's.raw")).toBe("fd:3");
  });
});

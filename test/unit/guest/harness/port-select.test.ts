import { afterEach, describe, expect, it } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ControlPort, findControlPort, findVirtioSerialPort, parseVsockEndpoint, vsockEndpoint } from "../../../../guest/harness/port.ts";
import { CONTROL_VSOCK_PORT } from "../../../../src/api/schema/control.ts";
import { connectVsock, sockaddrVm } from "../../../../guest/harness/vsock.ts";

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), "port-sel-"));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A fake /sys/class/virtio-ports with the given port names (null: no name file). */
function sysPorts(ports: Record<string, string | null>): string {
  const root = join(tmp(), "virtio-ports");
  mkdirSync(root, { recursive: true });
  for (const [dev, name] of Object.entries(ports)) {
    mkdirSync(join(root, dev));
    if (name !== null) writeFileSync(join(root, dev, "name"), `${name}\n`);
  }
  return root;
}

describe("control channel selection", () => {
  it("uses the virtio-serial port named aegis.control when present, even when vsock exists too (QEMU)", () => {
    const vsock = join(tmp(), "vsock");
    writeFileSync(vsock, "");
    expect(findControlPort(sysPorts({ vport0p0: "", vport1p1: "aegis.control" }), { vsockDevice: vsock })).toBe("/dev/vport1p1");
  });

  it("falls back to vsock on host CID 2 when no port has that name (libkrun's console ports are unnamed)", () => {
    const vsock = join(tmp(), "vsock");
    writeFileSync(vsock, "");
    expect(findControlPort(sysPorts({ vport0p0: "", vport0p1: null }), { vsockDevice: vsock })).toBe(`vsock:2:${CONTROL_VSOCK_PORT}`);
  });

  it("falls back to vsock when the virtio-ports directory does not exist at all", () => {
    const vsock = join(tmp(), "vsock");
    writeFileSync(vsock, "");
    expect(findVirtioSerialPort(join(tmp(), "missing"))).toBeNull();
    expect(findControlPort(join(tmp(), "missing"), { vsockDevice: vsock })).toBe(vsockEndpoint());
  });

  it("fails naming both transports when neither exists", () => {
    expect(() => findControlPort(sysPorts({ vport0p0: "other" }), { vsockDevice: join(tmp(), "no-vsock") })).toThrow(
      /no virtio-serial port named aegis\.control under .*, and no .*no-vsock for vsock port 1025/,
    );
  });

  it("round-trips the vsock endpoint spelling and leaves device paths alone", () => {
    expect(parseVsockEndpoint(vsockEndpoint(2, 1025))).toEqual({ cid: 2, port: 1025 });
    expect(parseVsockEndpoint("/dev/vport1p1")).toBeNull();
  });
});

describe("vsock", () => {
  it("lays out struct sockaddr_vm as the kernel expects (family, reserved, port, cid, zero; 16 bytes)", () => {
    const b = sockaddrVm(2, 1025);
    expect(b.length).toBe(16);
    expect(b.readUInt16LE(0)).toBe(40); // AF_VSOCK
    expect(b.readUInt16LE(2)).toBe(0);
    expect(b.readUInt32LE(4)).toBe(1025);
    expect(b.readUInt32LE(8)).toBe(2);
    expect(b.readUInt32LE(12)).toBe(0);
  });

  // This host has no vhost-vsock (/dev/vhost-vsock is absent), so nothing can
  // listen on a host vsock port: the connect must fail with a named errno
  // (or EAFNOSUPPORT without a transport), never hang or be swallowed.
  it("reports a failed connect with the errno instead of hanging or falling back", () => {
    expect(() => connectVsock(2, 0x7ffffff0, 0)).toThrow(/vsock (socket|connect) to CID 2 port 2147483632: E[A-Z]+/);
    expect(() => new ControlPort(vsockEndpoint(2, 0x7ffffff0), { connectTimeoutMs: 0 })).toThrow(/vsock/);
  });
});

describe("guest config under libkrun", () => {
  it("maps AEGIS_DISKS names to devices in attach order", async () => {
    const { disksFromEnv } = await import("../../../../guest/harness/config.ts");
    expect([...disksFromEnv("aegis-root,aegis-overlay")]).toEqual([
      ["aegis-root", "/dev/vda"],
      ["aegis-overlay", "/dev/vdb"],
    ]);
    expect(disksFromEnv("").size).toBe(0);
  });
});

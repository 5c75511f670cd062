import { describe, expect, it } from "bun:test";
import { loadOrder, modinfoDepends, moduleName, parseModulesDep } from "../../../../src/vmm/assets/modules.ts";

describe("kernel module resolution", () => {
  it("normalises module file names", () => {
    expect(moduleName("kernel/drivers/net/virtio-net.ko.xz")).toBe("virtio_net");
    expect(moduleName("/x/overlay.ko")).toBe("overlay");
  });

  it("parses modules.dep", () => {
    const dep = parseModulesDep("kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko\nkernel/net/core/failover.ko:\n");
    expect(dep.get("virtio_net")).toEqual({ path: "kernel/drivers/net/virtio_net.ko", deps: ["net_failover", "failover"] });
    expect(dep.get("failover")?.deps).toEqual([]);
  });

  it("reads depends= from .modinfo strings", () => {
    const ko = Buffer.concat([Buffer.from("\x7fELF...\0license=GPL\0depends=virtio,virtio_ring\0vermagic=6.1\0")]);
    expect(modinfoDepends(ko)).toEqual(["virtio", "virtio_ring"]);
    expect(modinfoDepends(Buffer.from("\0depends=\0"))).toEqual([]);
  });

  it("orders dependencies first and skips built-ins", () => {
    const table: Record<string, string[]> = {
      virtio_net: ["net_failover", "virtio", "virtio_ring"],
      net_failover: ["failover"],
      failover: [],
      virtio: [],
      virtio_ring: [],
    };
    const lookup = (n: string) => (n in table ? { path: `/m/${n}.ko`, deps: table[n]! } : undefined);
    const order = loadOrder(["virtio_net", "ext4"], lookup, new Set(["ext4", "virtio_ring"])).map((m) => m.name);
    expect(order).toEqual(["failover", "net_failover", "virtio", "virtio_net"]);
  });

  it("fails clearly when a module is missing", () => {
    expect(() => loadOrder(["virtiofs"], () => undefined, new Set())).toThrow(/virtiofs is neither built in nor present/);
  });
});

import { describe, expect, it } from "bun:test";
import { cpuHasVirtFlags, detectAccel, tscKhzFromCpuinfo, type AccelProbe } from "../../../src/vmm/accel.ts";

const withVmx = "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr vmx sse4_2\n";
const noVirt = "processor\t: 0\ncpu MHz\t\t: 2596.118\nflags\t\t: fpu vme tsc hypervisor avx2\n";

function probe(p: Partial<AccelProbe>): AccelProbe {
  return { platform: "linux", env: {}, cpuinfo: () => noVirt, kvmOpens: () => true, ...p };
}

describe("accelerator detection", () => {
  it("parses vmx/svm flags and the TSC frequency", () => {
    expect(cpuHasVirtFlags(withVmx)).toBe(true);
    expect(cpuHasVirtFlags("flags\t: svm\n")).toBe(true);
    expect(cpuHasVirtFlags(noVirt)).toBe(false);
    expect(tscKhzFromCpuinfo(noVirt)).toBe(2596118);
    expect(tscKhzFromCpuinfo("flags: x\n")).toBeUndefined();
  });

  it("uses KVM only when the flags are there AND /dev/kvm opens", () => {
    expect(detectAccel(probe({ cpuinfo: () => withVmx })).name).toBe("kvm");
    expect(detectAccel(probe({ cpuinfo: () => withVmx, kvmOpens: () => false })).name).toBe("tcg");
    const nested = detectAccel(probe({ cpuinfo: () => noVirt, kvmOpens: () => true }));
    expect(nested.name).toBe("tcg");
    expect(nested.reason).toContain("vmx/svm");
  });

  it("uses HVF on macOS and honours AEGIS_ACCEL", () => {
    expect(detectAccel(probe({ platform: "darwin" })).name).toBe("hvf");
    expect(detectAccel(probe({ env: { AEGIS_ACCEL: "tcg" }, cpuinfo: () => withVmx })).name).toBe("tcg");
    expect(detectAccel(probe({ env: { AEGIS_ACCEL: "KVM" } })).name).toBe("kvm");
    expect(() => detectAccel(probe({ env: { AEGIS_ACCEL: "xen" } }))).toThrow(/AEGIS_ACCEL=xen/);
  });
});

/** Unit tests of the shim's Stats answer, Update rule and bind-mount planning (issue 18). */
import { afterAll, describe, expect, it } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cpuTimes, meminfoBytes, statPpid } from "../../../guest/harness/stats.ts";
import { bindPlans, resolveInRootfs } from "../../../src/shim/bind-mounts.ts";
import { guestProcess } from "../../../src/shim/oci-spec.ts";
import { decode } from "../../../src/shim/proto/index.ts";
import { METRICS_TYPE, statsResponse, type InstanceStats } from "../../../src/shim/stats.ts";
import { Code, TtrpcError } from "../../../src/shim/ttrpc.ts";
import { checkUpdate } from "../../../src/shim/update.ts";

const tmp = mkdtempSync(join(tmpdir(), "shim-oci-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
function codeOf(fn: () => void): number | null {
  try {
    fn();
    return null;
  } catch (err) {
    expect(err).toBeInstanceOf(TtrpcError);
    return (err as TtrpcError).code;
  }
}

describe("guest stats parsing", () => {
  it("reads meminfo, /proc/stat and a stat line's ppid", () => {
    expect(meminfoBytes("MemTotal:  1000 kB\nMemAvailable: 400 kB\n", "MemAvailable")).toBe(409_600);
    expect(meminfoBytes("MemTotal:  1000 kB\n", "Cached")).toBe(0);
    const t = cpuTimes("cpu  10 2 5 100 1 1 1 0 0 0\ncpu0 6 1 3 50 0 1 0 0 0 0\ncpu1 4 1 2 50 1 0 1 0 0 0\nintr 1\n");
    expect(t).toEqual({ cpu_user_usec: 120_000, cpu_system_usec: 70_000, cpu_usage_usec: 190_000, cpu_per_cpu_usec: [110_000, 80_000] });
    expect(statPpid("42 (a (b) c) S 7 42 42 0")).toBe(7);
  });
});

describe("Stats answer", () => {
  it("is a cgroups v2 Metrics Any with memory, CPU and pids", () => {
    const s: InstanceStats = { mem_total_bytes: 400 << 20, mem_available_bytes: 300 << 20, mem_cached_bytes: 5 << 20, swap_total_bytes: 0, swap_free_bytes: 0, cpu_user_usec: 7, cpu_system_usec: 3, cpu_usage_usec: 10, cpu_per_cpu_usec: [10], processes: 2, uptime_ms: 1, vcpus: 1, memory_mb: 384 };
    const r = statsResponse(s, { memoryBytes: 256 << 20 }) as { stats: { type_url: string; value: Uint8Array } };
    expect(r.stats.type_url).toBe(METRICS_TYPE);
    const m = decode(METRICS_TYPE, r.stats.value) as { memory: Record<string, number>; cpu: Record<string, number>; pids: Record<string, number> };
    expect(m.memory.usage).toBe(100 << 20);
    expect(m.memory.usage_limit).toBe(256 << 20);
    expect(m.memory.file).toBe(5 << 20);
    expect(m.cpu.usage_usec).toBe(10);
    expect(m.cpu.user_usec).toBe(7);
    expect(m.pids.current).toBe(2);
  });
});

describe("Update rule", () => {
  const booted = { memory_mb: 384, vcpus: 2 };
  it("accepts what leaves the VM's shape as booted", () => {
    expect(codeOf(() => checkUpdate(json({}), booted))).toBeNull();
    expect(codeOf(() => checkUpdate(new Uint8Array(), booted))).toBeNull();
    expect(codeOf(() => checkUpdate(json({ memory: { limit: 256 << 20 }, cpu: { quota: 200_000, period: 100_000, shares: 1024 } }), booted))).toBeNull();
  });
  it("refuses memory or vCPU changes with FailedPrecondition, and unmapped limits with InvalidArgument", () => {
    expect(codeOf(() => checkUpdate(json({ memory: { limit: 512 << 20 } }), booted))).toBe(Code.failedPrecondition);
    expect(codeOf(() => checkUpdate(json({ memory: { limit: 512 << 20 } }), {}))).toBe(Code.failedPrecondition);
    expect(codeOf(() => checkUpdate(json({ cpu: { quota: 400_000, period: 100_000 } }), booted))).toBe(Code.failedPrecondition);
    expect(codeOf(() => checkUpdate(json({ pids: { limit: 10 } }), booted))).toBe(Code.invalidArgument);
    expect(codeOf(() => checkUpdate(new TextEncoder().encode("{"), booted))).toBe(Code.invalidArgument);
  });
});

describe("process user", () => {
  it("passes uid:gid and additionalGids as the exec's user and groups", () => {
    expect(guestProcess({ args: ["id"], user: { uid: 1000, gid: 1000, additionalGids: [44, 55] } })).toEqual({ command: ["id"], env: {}, user: "1000:1000", groups: [44, 55], terminal: false });
    expect(guestProcess({ args: ["id"], user: { uid: 0, gid: 0, additionalGids: [7] } })).toEqual({ command: ["id"], env: {}, user: "0:0", groups: [7], terminal: false });
  });
});

describe("bind mounts", () => {
  it("plans binds only, with ro flags, and refuses a relative source", () => {
    const plans = bindPlans([
      { destination: "/proc", type: "proc", source: "proc" },
      { destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["nosuid"] },
      { destination: "/data", type: "bind", source: "/tmp/x", options: ["rbind", "ro", "nosuid"] },
      { destination: "/etc/hosts", source: "/var/lib/hosts", options: ["bind", "rw"] },
    ]);
    expect(plans).toEqual([
      { source: "/tmp/x", destination: "/data", recursive: true, remount: ["ro", "nosuid"] },
      { source: "/var/lib/hosts", destination: "/etc/hosts", recursive: false, remount: [] },
    ]);
    expect(() => bindPlans([{ destination: "/d", type: "bind", source: "rel" }])).toThrow(/absolute host path/);
  });
  it("resolves the destination inside the rootfs, symlinks and .. included", () => {
    const root = join(tmp, "rootfs");
    mkdirSync(join(root, "real/sub"), { recursive: true });
    symlinkSync("/real", join(root, "abs"));
    symlinkSync("../../etc", join(root, "real/up"));
    expect(resolveInRootfs(root, "/abs/sub")).toBe(`${root}/real/sub`);
    expect(resolveInRootfs(root, "/real/up/passwd")).toBe(`${root}/etc/passwd`);
    expect(resolveInRootfs(root, "/../../x")).toBe(`${root}/x`);
    symlinkSync("/loop", join(root, "loop"));
    expect(() => resolveInRootfs(root, "/loop")).toThrow(/too many symlinks/);
  });
});

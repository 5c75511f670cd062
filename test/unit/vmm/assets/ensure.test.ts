import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureGuestAssets } from "../../../../src/vmm/assets/index.ts";

// A stand-in kernel (AEGIS_KERNEL without modules) and a small dynamic binary keep this fast and offline.
const dir = mkdtempSync(join(tmpdir(), "assets-"));
const kernel = join(dir, "vmlinuz-9.9.9-test");
const binary = join(dir, "harness");
let savedKernel: string | undefined;

beforeAll(() => {
  savedKernel = process.env.AEGIS_KERNEL;
  writeFileSync(kernel, "not really a kernel");
  copyFileSync("/bin/true", binary);
  process.env.AEGIS_KERNEL = kernel;
});
afterAll(() => {
  if (savedKernel === undefined) delete process.env.AEGIS_KERNEL;
  else process.env.AEGIS_KERNEL = savedKernel;
  rmSync(dir, { recursive: true, force: true });
});

describe("ensureGuestAssets", () => {
  it("builds kernel, initramfs, tools disk and base rootfs once, even when called concurrently", async () => {
    const cache = join(dir, "guest");
    const [a, b] = await Promise.all([ensureGuestAssets({ dir: cache, binary }), ensureGuestAssets({ dir: cache, binary })]);
    expect(a).toEqual(b);
    for (const f of [a.kernel, a.initrd, a.toolsDisk, a.baseRootfs]) expect(existsSync(f)).toBe(true);
    expect(a.kernelVersion).toBe("9.9.9-test");
    expect(readdirSync(cache).filter((d) => d.startsWith(".build-"))).toEqual([]);
    const t0 = performance.now();
    expect(await ensureGuestAssets({ dir: cache, binary })).toEqual(a);
    expect(performance.now() - t0).toBeLessThan(2000);
  }, 60_000);

  it("rebuilds when the harness binary changes", async () => {
    const cache = join(dir, "guest");
    const before = await ensureGuestAssets({ dir: cache, binary });
    copyFileSync("/bin/false", binary);
    const after = await ensureGuestAssets({ dir: cache, binary });
    expect(after.hash).not.toBe(before.hash);
  }, 60_000);

  it("fails clearly when the binary is missing", async () => {
    await expect(ensureGuestAssets({ dir: join(dir, "g2"), binary: join(dir, "nope") })).rejects.toThrow(/does not exist/);
  });
});

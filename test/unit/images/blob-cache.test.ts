import { afterEach, describe, expect, it } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BlobCache } from "../../../src/daemon/images/blob-cache.ts";
import { sha256Digest } from "../../../src/daemon/images/digest.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function cache() {
  const d = mkdtempSync(join(tmpdir(), "aegis-blob-"));
  dirs.push(d);
  return new BlobCache(d);
}

describe("blob cache", () => {
  it("stores verified bytes under blobs/sha256/<hex>", async () => {
    const c = cache();
    const bytes = new TextEncoder().encode("hello");
    const d = sha256Digest(bytes);
    const p = await c.writeBytes(d, bytes, "test blob");
    expect(p.endsWith(`blobs/sha256/${d.slice(7)}`)).toBe(true);
    expect(c.has(d)).toBe(true);
    expect(new TextDecoder().decode(c.read(d))).toBe("hello");
  });
  it("rejects bytes whose digest differs and leaves neither the blob nor a temp file", async () => {
    const c = cache();
    const d = sha256Digest("expected");
    await expect(c.writeBytes(d, new TextEncoder().encode("tampered"), "layer X")).rejects.toThrow(/digest mismatch for layer X/);
    expect(c.has(d)).toBe(false);
    expect(readdirSync(c.tmpDir)).toEqual([]);
  });
  it("aborts a stream that runs past its declared size", async () => {
    const c = cache();
    const bytes = new Uint8Array(100);
    await expect(c.write(sha256Digest(bytes), [bytes], { what: "blob", size: 10 })).rejects.toThrow(/larger than its declared size 10/);
    expect(readdirSync(c.tmpDir)).toEqual([]);
  });
  it("runs one fetch for concurrent requests of the same digest", async () => {
    const c = cache();
    const bytes = new TextEncoder().encode("once");
    const d = sha256Digest(bytes);
    let calls = 0;
    const fetch = async () => {
      calls++;
      await Bun.sleep(20);
      return c.writeBytes(d, bytes, "b");
    };
    const [a, b] = await Promise.all([c.ensure(d, fetch), c.ensure(d, fetch)]);
    expect(a).toBe(b);
    expect(calls).toBe(1);
    expect(c.remove(d)).toBe(4);
    expect(existsSync(a)).toBe(false);
  });
});

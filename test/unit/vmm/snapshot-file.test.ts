import { afterAll, describe, expect, it } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  readSnapshotMeta,
  receiveSnapshot,
  removeSnapshot,
  snapshotMismatch,
  stampFile,
  writeSnapshotMeta,
  type SnapshotMeta,
} from "../../../src/vmm/snapshot-file.ts";

const dir = mkdtempSync(join(tmpdir(), "agsnap-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const machine = { qemuBinary: "/usr/bin/qemu-system-x86_64", accel: "tcg", arch: "x86_64", assetsHash: "abc", memoryMb: 512, vcpus: 1, hostname: "i1" };
const stamp = (path: string, mtimeNs = "100", size = 4096) => ({ path, size, mtimeNs, ino: "7" });
const identity = { machine, disks: { tools: stamp("/g/tools.ext4"), rootfs: stamp("/img/r.ext4"), overlay: stamp("/i/overlay.ext4") } };
const meta: SnapshotMeta = { format: 1, vmId: "i1", createdAt: "2026-01-01T00:00:00Z", bytes: 1000, ...identity };

describe("snapshotMismatch", () => {
  it("accepts a snapshot whose machine and disks are unchanged", () => {
    expect(snapshotMismatch(meta, identity, 1000)).toBeUndefined();
  });

  it("refuses a missing or truncated snapshot file", () => {
    expect(snapshotMismatch(meta, identity, undefined)).toMatch(/missing/);
    expect(snapshotMismatch(meta, identity, 999)).toMatch(/999 bytes, 1000 were written/);
  });

  it("refuses a different machine (memory, vcpus, assets, hostname)", () => {
    expect(snapshotMismatch(meta, { ...identity, machine: { ...machine, memoryMb: 1024 } }, 1000)).toMatch(/memoryMb differs: snapshot 512, now 1024/);
    expect(snapshotMismatch(meta, { ...identity, machine: { ...machine, assetsHash: "new" } }, 1000)).toMatch(/assetsHash/);
    expect(snapshotMismatch(meta, { ...identity, machine: { ...machine, hostname: "other" } }, 1000)).toMatch(/hostname/);
  });

  it("refuses an overlay disk written after the snapshot, a moved rootfs, and an added or removed overlay", () => {
    const written = { ...identity, disks: { ...identity.disks, overlay: stamp("/i/overlay.ext4", "200") } };
    expect(snapshotMismatch(meta, written, 1000)).toMatch(/overlay disk \/i\/overlay.ext4 changed since the snapshot/);
    const moved = { ...identity, disks: { ...identity.disks, rootfs: stamp("/img/other.ext4") } };
    expect(snapshotMismatch(meta, moved, 1000)).toMatch(/rootfs disk moved/);
    const { overlay: _o, ...noOverlay } = identity.disks;
    expect(snapshotMismatch(meta, { ...identity, disks: noOverlay }, 1000)).toMatch(/needs the overlay disk/);
    expect(snapshotMismatch({ ...meta, disks: noOverlay }, identity, 1000)).toMatch(/has no overlay disk/);
  });

  it("refuses a template whose memory file changed, went missing or was never recorded", () => {
    const withMem = { ...meta, memory: stamp("/t/k.ram") };
    expect(snapshotMismatch(withMem, { ...identity, memory: stamp("/t/k.ram") }, 1000)).toBeUndefined();
    expect(snapshotMismatch(withMem, { ...identity, memory: stamp("/t/k.ram", "300") }, 1000)).toMatch(/memory file \/t\/k.ram changed since the snapshot/);
    expect(snapshotMismatch(withMem, identity, 1000)).toMatch(/memory file \/t\/k.ram, which is missing/);
    expect(snapshotMismatch(meta, { ...identity, memory: stamp("/t/k.ram") }, 1000)).toMatch(/holds its RAM/);
  });
});

describe("snapshot files", () => {
  it("stamps files with ns mtime and inode, and round-trips metadata", () => {
    const f = join(dir, "disk");
    writeFileSync(f, "x".repeat(10));
    const s = stampFile(f);
    expect(s).toMatchObject({ path: f, size: 10 });
    expect(s.mtimeNs).toMatch(/^\d+$/);
    writeSnapshotMeta(join(dir, "a.snap"), { ...meta, disks: { ...meta.disks, overlay: s } });
    expect(readSnapshotMeta(join(dir, "a.snap"))?.disks.overlay).toEqual(s);
    expect(readSnapshotMeta(join(dir, "none.snap"))).toBeUndefined();
    removeSnapshot(join(dir, "a.snap"));
    expect(existsSync(join(dir, "a.snap.json"))).toBe(false);
  });

  for (const name of ["raw.snap", "packed.snap.zst"]) {
    it(`receives a migration stream on a unix socket into ${name}.partial`, async () => {
      const out = join(dir, name);
      const sock = join(dir, `${name}.sock`);
      const rx = receiveSnapshot(sock, out);
      const payload = Buffer.alloc(3 * 1024 * 1024 + 17);
      for (let i = 0; i < payload.length; i++) payload[i] = (i * 31) & 0xff;
      const s = await Bun.connect({ unix: sock, socket: { data: () => {} } });
      for (let off = 0; off < payload.length; ) {
        const n = s.write(payload.subarray(off, off + 256 * 1024));
        off += n;
        if (n === 0) await Bun.sleep(1);
      }
      s.end();
      expect(await rx.done).toBe(payload.length);
      rx.close();
      const partial = `${out}.partial`;
      expect(statSync(partial).mode & 0o777).toBe(0o600);
      const got = name.endsWith(".zst") ? Bun.zstdDecompressSync(readFileSync(partial)) : readFileSync(partial);
      expect(Buffer.from(got).equals(payload)).toBe(true);
    });
  }

  it("fails when QEMU closes the socket without a stream", async () => {
    const rx = receiveSnapshot(join(dir, "e.sock"), join(dir, "e.snap"));
    rx.close();
    // Never connected: `done` stays pending; closing must not throw or leave the socket behind.
    expect(existsSync(join(dir, "e.sock"))).toBe(false);
  });
});

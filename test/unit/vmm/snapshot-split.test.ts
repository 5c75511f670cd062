import { afterAll, describe, expect, it } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { receiveSnapshot } from "../../../src/vmm/snapshot-file.ts";
import { MigrationSplitter, PAGE, SnapshotFormatError, type SplitSink } from "../../../src/vmm/snapshot-split.ts";

const dir = mkdtempSync(join(tmpdir(), "split-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const enc = new TextEncoder();
const b32 = (n: number) => [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
const b64 = (n: number) => [...b32(Math.floor(n / 2 ** 32)), ...b32(n >>> 0)];
const str = (s: string) => [s.length, ...enc.encode(s)];
const page = (v: number) => Array<number>(PAGE).fill(v);
const [ZERO, MEM_SIZE, PG, EOS, CONT] = [0x02, 0x04, 0x08, 0x10, 0x20];
const footer = [0x7e, ...b32(2)];
const DEVICES = [0x04, ...b32(3), ...str("cpu"), ...b32(0), ...b32(1), 1, 2, 3, 0x7e, ...b32(3), 0x00];

/** A QEMU 7.2 stream as a VM without x-ignore-shared sends it: mem0 (3 pages), a 2-page ROM, device state. */
const stream = new Uint8Array([
  ...[0x51, 0x45, 0x56, 0x4d, 0, 0, 0, 3],
  0x07, ...b32(7), ...enc.encode("microvm"),
  0x01, ...b32(2), ...str("ram"), ...b32(0), ...b32(4),
  ...b64(0x5000 | MEM_SIZE), ...str("mem0"), ...b64(0x3000), ...str("/rom@x"), ...b64(0x2000), ...b64(EOS), ...footer,
  0x02, ...b32(2),
  ...b64(0 | PG), ...str("/rom@x"), ...page(7),
  ...b64(0x1000 | PG | CONT), ...page(8),
  ...b64(0 | PG), ...str("mem0"), ...page(1),
  ...b64(0x2000 | PG | CONT), ...page(2),
  ...b64(0x1000 | ZERO | CONT), 0,
  ...b64(EOS), ...footer,
  0x03, ...b32(2),
  ...b64(0x2000 | ZERO | CONT), 0, // continues the previous section's block (mem0)
  ...b64(0x1000 | PG), ...str("/rom@x"), ...page(9),
  ...b64(EOS), ...footer,
  ...DEVICES,
]);

/** What the device stream must be: the same, with the capability, the guest addresses, and no mem0 page. */
const expectedDevice = new Uint8Array([
  ...[0x51, 0x45, 0x56, 0x4d, 0, 0, 0, 3],
  0x07, ...b32(7), ...enc.encode("microvm"),
  0x05, ...str("configuration/capabilities"), ...b32(1), ...b32(1), ...str("x-ignore-shared"),
  0x01, ...b32(2), ...str("ram"), ...b32(0), ...b32(4),
  ...b64(0x5000 | MEM_SIZE), ...str("mem0"), ...b64(0x3000), ...b64(0), ...str("/rom@x"), ...b64(0x2000), ...b64(0), ...b64(EOS), ...footer,
  0x02, ...b32(2),
  ...b64(0 | PG), ...str("/rom@x"), ...page(7),
  ...b64(0x1000 | PG), ...str("/rom@x"), ...page(8),
  ...b64(EOS), ...footer,
  0x03, ...b32(2),
  ...b64(0x1000 | PG), ...str("/rom@x"), ...page(9),
  ...b64(EOS), ...footer,
  ...DEVICES,
]);

function run(bytes: Uint8Array, chunk: (i: number) => number) {
  const device: number[] = [];
  const ram: string[] = [];
  const sink: SplitSink = {
    device: (b) => device.push(...b),
    ramSize: (n) => ram.push(`size ${n}`),
    page: (off, d) => ram.push(`page ${off} ${d[0]} ${d.length}`),
    fill: (off, f) => ram.push(`fill ${off} ${f}`),
  };
  const s = new MigrationSplitter(sink);
  for (let pos = 0, i = 0; pos < bytes.length; i++) {
    const n = Math.min(chunk(i), bytes.length - pos);
    s.feed(bytes.slice(pos, pos + n));
    pos += n;
  }
  s.end();
  return { device: new Uint8Array(device), ram };
}

describe("MigrationSplitter", () => {
  const wantRam = ["size 12288", "page 0 1 4096", "page 8192 2 4096", "fill 4096 0", "fill 8192 0"];

  it("moves mem0's pages out, keeps the other blocks' naming their block, and adds what x-ignore-shared streams carry", () => {
    const r = run(stream, () => stream.length);
    expect(r.ram).toEqual(wantRam);
    expect([...r.device]).toEqual([...expectedDevice]);
  });

  it("gives the same result however the stream is cut into chunks", () => {
    for (const cut of [() => 1, () => 7, () => 4099, (i: number) => (i * 977) % 5000 + 1]) {
      const r = run(stream, cut);
      expect(r.ram).toEqual(wantRam);
      expect([...r.device]).toEqual([...expectedDevice]);
    }
  });

  it("refuses streams it does not know, so the caller writes the whole stream", () => {
    const withCaps = new Uint8Array([...expectedDevice.subarray(0, 19 + 47), ...stream.subarray(19)]);
    expect(() => run(withCaps, () => 1 << 20)).toThrow(SnapshotFormatError);
    const xbzrle = stream.slice();
    const part = 8 + 12 + 17 + 44 + 5; // header, configuration, ram section start, block list, footer
    expect(stream[part]).toBe(0x02);
    xbzrle[part + 5 + 7] = 0x40 | PG; // the first record's flags, plus XBZRLE
    expect(() => run(xbzrle, () => 1 << 20)).toThrow(/unsupported page record flags 0x48/);
    expect(() => run(stream.subarray(0, 300), () => 1 << 20)).toThrow(/ended inside the ram section/);
    expect(() => run(new Uint8Array(16), () => 16)).toThrow(/not a QEMU migration stream/);
  });
});

describe("receiveSnapshot into a .dev path", () => {
  it("writes the device stream and a sparse 0600 RAM file with each page at its offset, zero pages rewritten only when sent twice", async () => {
    const path = join(dir, "s.dev");
    const sock = join(dir, "mig.sock");
    const rx = receiveSnapshot(sock, path);
    const c = await Bun.connect({ unix: sock, socket: { data() {} } });
    c.write(stream);
    c.end();
    expect(await rx.done).toBe(stream.length);
    rx.close();
    expect([...readFileSync(`${path}.partial`)]).toEqual([...expectedDevice]);
    const ram = readFileSync(join(dir, "s.ram.partial"));
    expect(ram.length).toBe(0x3000);
    expect(ram.subarray(0, PAGE).every((v) => v === 1)).toBe(true);
    expect(ram.subarray(PAGE).every((v) => v === 0)).toBe(true); // page 1 never sent, page 2 sent then zeroed
    expect(statSync(join(dir, "s.ram.partial")).mode & 0o777).toBe(0o600);
  });
});

/**
 * @module vmm/snapshot-split
 * Splits one QEMU 7.2 migration stream (a snapshot of a VM whose RAM is not
 * a shared file) into what a template's snapshot is made of: the guest RAM
 * block `mem0` as a flat, sparse file (page N at offset N * 4096, zero pages
 * left as holes) and a device stream in the `x-ignore-shared` format, which
 * holds everything else (the small ROM blocks' pages, every device's state).
 * A restore then maps the RAM file copy-on-write (`share=off`) and loads
 * only the device stream, as a template clone does (qemu-args.ts), instead
 * of copying ~200 MB of pages into fresh anonymous memory before the guest
 * can run: the wake's "incoming migration load" phase.
 *
 * The rewrite, against the stream format of QEMU 7.2 (migration/savevm.c,
 * migration/ram.c), is:
 * - the configuration section gets the `configuration/capabilities`
 *   subsection naming `x-ignore-shared` (a destination with the capability
 *   on refuses a stream whose source did not have it);
 * - the `ram` section's block list gets each block's guest address (a
 *   stream with the capability carries one; the destination compares it
 *   only for blocks it ignores itself, and a `share=off` block is not one);
 * - `mem0`'s page records go to the RAM file and are dropped from the
 *   stream; other blocks' records are kept, each naming its block (never
 *   `RAM_SAVE_FLAG_CONTINUE`, whose "previous block" changes when records
 *   are dropped);
 * - everything after the `ram` section's end (device state, EOF, the JSON
 *   description) is copied as it is.
 * Anything else (another iterable section, compressed or XBZRLE pages,
 * another page size, an unknown subsection) raises
 * {@link SnapshotFormatError}: the caller then takes a plain snapshot. A
 * pure transformation over bytes, unit-tested on synthetic streams.
 */

/** The stream is not the QEMU 7.2 migration format this splitter knows. */
export class SnapshotFormatError extends Error {
  override name = "SnapshotFormatError";
}

/** Where the two halves go. */
export interface SplitSink {
  /** Bytes of the device stream, in order. */
  device(bytes: Uint8Array): void;
  /** The RAM block's size, once, before any page. */
  ramSize(bytes: number): void;
  /** One page of the RAM block at byte `offset` (4096 bytes; a copy is needed to keep it). */
  page(offset: number, data: Uint8Array): void;
  /** A page of the RAM block that is all `fill` (QEMU sends zero pages this way). */
  fill(offset: number, fill: number): void;
}

/** Guest page size of the x86_64 and aarch64 targets we run (the configuration section would say otherwise). */
export const PAGE = 4096;
/** The RAM block holding guest memory (qemu-args.ts `mem0`). */
export const RAM_BLOCK = "mem0";

const MAGIC = 0x5145564d; // "QEVM"
const VERSION = 3;
const VM_SECTION_START = 0x01;
const VM_SECTION_PART = 0x02;
const VM_SECTION_END = 0x03;
const VM_SUBSECTION = 0x05;
const VM_CONFIGURATION = 0x07;
const VM_SECTION_FOOTER = 0x7e;
const F_ZERO = 0x02;
const F_MEM_SIZE = 0x04;
const F_PAGE = 0x08;
const F_EOS = 0x10;
const F_CONTINUE = 0x20;

const enc = new TextEncoder();
const dec = new TextDecoder();

/** `configuration/capabilities` v1 with the one capability `x-ignore-shared`, as QEMU writes it. */
const CAPABILITIES = (() => {
  const name = enc.encode("configuration/capabilities");
  const cap = enc.encode("x-ignore-shared");
  return new Uint8Array([VM_SUBSECTION, name.length, ...name, 0, 0, 0, 1, 0, 0, 0, 1, cap.length, ...cap]);
})();

const be32 = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, 4).getUint32(0);
const be64 = (b: Uint8Array) => Number(new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0));
function u64(n: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n));
  return b;
}

/** Ask for `n` bytes (the generator yields a count and is resumed with exactly that many); -1: copy the rest as it is. */
type Parser = Generator<number, void, Uint8Array>;

function* parse(out: SplitSink, last: { block?: string }): Parser {
  const header = yield 8;
  if (be32(header) !== MAGIC || be32(header.subarray(4)) !== VERSION) throw new SnapshotFormatError("not a QEMU migration stream of version 3");
  out.device(header.slice());
  const conf = yield 5;
  if (conf[0] !== VM_CONFIGURATION) throw new SnapshotFormatError("the stream has no configuration section");
  const machine = yield be32(conf.subarray(1));
  out.device(conf.slice());
  out.device(machine.slice());
  let type = (yield 1)[0]!;
  if (type === VM_SUBSECTION) throw new SnapshotFormatError("the configuration section has subsections (capabilities or a variable page size)");
  out.device(CAPABILITIES);
  let ramId: number | undefined;
  // `last`: the block a RAM_SAVE_FLAG_CONTINUE record means, the previous record's, across sections too.
  for (;;) {
    const id = be32(yield 4);
    if (type === VM_SECTION_START) {
      if (ramId !== undefined) throw new SnapshotFormatError("a second iterable section starts");
      const nameLen = (yield 1)[0]!;
      const name = dec.decode(yield nameLen);
      if (name !== "ram") throw new SnapshotFormatError(`an iterable section other than ram: ${name}`);
      const instVer = (yield 8).slice();
      ramId = id;
      out.device(new Uint8Array([type, ...u64(id).subarray(4), nameLen, ...enc.encode(name), ...instVer]));
      yield* blockList(out);
    } else if ((type === VM_SECTION_PART || type === VM_SECTION_END) && id === ramId) {
      out.device(new Uint8Array([type, ...u64(id).subarray(4)]));
    } else {
      throw new SnapshotFormatError(`unexpected section type ${type} (id ${id}) before the end of the ram section`);
    }
    yield* pages(out, last);
    const footer = yield 5;
    if (footer[0] !== VM_SECTION_FOOTER || be32(footer.subarray(1)) !== id) throw new SnapshotFormatError(`section ${id} has no footer`);
    out.device(footer.slice());
    if (type === VM_SECTION_END) {
      yield -1;
      return;
    }
    type = (yield 1)[0]!;
  }
}

/** The ram section's start: the block list (with a guest address added to each block), up to its end-of-section flag. */
function* blockList(out: SplitSink): Parser {
  const head = yield 8;
  const total = be64(head);
  if ((total & (PAGE - 1)) !== F_MEM_SIZE) throw new SnapshotFormatError("the ram section does not start with its block list");
  out.device(head.slice());
  let left = total - F_MEM_SIZE;
  let sawRam = false;
  while (left > 0) {
    const len = (yield 1)[0]!;
    const name = dec.decode(yield len);
    const lengthBytes = (yield 8).slice();
    const length = be64(lengthBytes);
    if (name === RAM_BLOCK) {
      out.ramSize(length);
      sawRam = true;
    }
    // The guest address a stream with x-ignore-shared carries; a share=off destination block does not compare it.
    out.device(new Uint8Array([len, ...enc.encode(name), ...lengthBytes, ...u64(0)]));
    left -= length;
  }
  if (!sawRam) throw new SnapshotFormatError(`the stream has no RAM block ${RAM_BLOCK}`);
}

/** What `pages` yields to have the feeder run {@link record} over the complete records it holds. */
const FAST = -2;

/**
 * Page records up to and including the end-of-section flag; `last` carries
 * the current block from section to section. The feeder handles every
 * record it holds whole (FAST); one cut by a chunk boundary is put together
 * here.
 */
function* pages(out: SplitSink, last: { block?: string }): Parser {
  for (;;) {
    yield FAST;
    const head = (yield 8).slice();
    const lo = new DataView(head.buffer).getUint32(4);
    if ((lo & (PAGE - 1)) === F_EOS) {
      out.device(head);
      return;
    }
    const parts = [head];
    if (!(lo & F_CONTINUE)) {
      const len = (yield 1).slice();
      parts.push(len, (yield len[0]!).slice());
    }
    parts.push((yield lo & F_ZERO ? 1 : PAGE).slice());
    const whole = parts.reduce(concat);
    if (record(whole, new DataView(whole.buffer), 0, out, last) !== whole.length) throw new SnapshotFormatError("a page record was misread");
  }
}

/**
 * The page record at `b[p..]`, handed to `out`: the bytes it took, 0 when
 * `b` does not hold all of it, -1 at the end-of-section flag (not taken).
 * `dv` views all of `b`.
 */
function record(b: Uint8Array, dv: DataView, p: number, out: SplitSink, last: { block?: string }): number {
  const avail = b.length - p;
  if (avail < 8) return 0;
  const hi = dv.getUint32(p);
  const lo = dv.getUint32(p + 4);
  const flags = lo & (PAGE - 1);
  if (flags === F_EOS) return -1;
  if (flags & ~(F_ZERO | F_PAGE | F_CONTINUE) || !(flags & (F_ZERO | F_PAGE)) || (flags & F_ZERO && flags & F_PAGE)) {
    throw new SnapshotFormatError(`unsupported page record flags 0x${flags.toString(16)} (compression, XBZRLE or RDMA are never enabled)`);
  }
  const offset = hi * 2 ** 32 + (lo - flags);
  let n = 8;
  let block = last.block;
  if (!(flags & F_CONTINUE)) {
    if (avail < 9 || avail < 9 + b[p + 8]!) return 0;
    block = dec.decode(b.subarray(p + 9, p + 9 + b[p + 8]!));
    n = 9 + b[p + 8]!;
  } else if (block === undefined) {
    throw new SnapshotFormatError("a page record continues no block");
  }
  const size = flags & F_ZERO ? 1 : PAGE;
  if (avail < n + size) return 0;
  last.block = block;
  const data = b.subarray(p + n, p + n + size);
  if (block === RAM_BLOCK) {
    if (flags & F_ZERO) out.fill(offset, data[0]!);
    else out.page(offset, data);
  } else {
    const name = enc.encode(block);
    out.device(new Uint8Array([...u64(offset + (flags & ~F_CONTINUE)) /* page-aligned offset: + is |, without JS's 32-bit | */, name.length, ...name]));
    out.device(data.slice());
  }
  return n + size;
}

/** Feeds a migration stream, chunk by chunk, to the parser. */
export class MigrationSplitter {
  private readonly parser: Parser;
  private want: number;
  private buf: Uint8Array = new Uint8Array(0);
  private pos = 0;
  private rest = false;
  private readonly last: { block?: string } = {};

  constructor(private readonly out: SplitSink) {
    this.parser = parse(out, this.last);
    this.want = this.parser.next().value as number;
  }

  /** The next bytes of the stream. @throws SnapshotFormatError */
  feed(chunk: Uint8Array): void {
    if (this.rest) return this.out.device(chunk.slice());
    this.buf = this.pos < this.buf.length ? concat(this.buf.subarray(this.pos), chunk) : chunk;
    this.pos = 0;
    const dv = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
    for (;;) {
      if (this.want === FAST) {
        // Most of the stream: whole page records, read in place.
        for (let n; (n = record(this.buf, dv, this.pos, this.out, this.last)) > 0; ) this.pos += n;
        this.want = this.parser.next(new Uint8Array(0)).value as number;
        continue;
      }
      if (this.buf.length - this.pos < this.want) break;
      const bytes = this.buf.subarray(this.pos, this.pos + this.want);
      this.pos += this.want;
      const r = this.parser.next(bytes);
      if (r.done || r.value === -1) {
        this.rest = true;
        if (this.pos < this.buf.length) this.out.device(this.buf.slice(this.pos));
        this.buf = new Uint8Array(0);
        this.pos = 0;
        return;
      }
      this.want = r.value;
    }
  }

  /** The stream ended. @throws SnapshotFormatError when it ended before the ram section did */
  end(): void {
    if (!this.rest) throw new SnapshotFormatError("the stream ended inside the ram section");
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/**
 * @module vmm/assets/deb
 * Unpacking a Debian binary package without dpkg: a `.deb` is an `ar`
 * archive (`debian-binary`, `control.tar.*`, `data.tar.*`); we read the ar
 * member table ourselves and extract `data.tar.*` with the `tar` package.
 * Decompression: gzip and zstd in-process (Bun), xz through the `xz` CLI
 * (xz-utils on Debian, `brew install xz` on macOS; `aegis doctor` reports
 * it), since Debian's kernel and busybox packages use xz and neither Bun nor
 * node:zlib decode it. Callers pass only packages whose sha256 they checked
 * (apt's or our own archive verification), so the tar content is trusted;
 * `tar` still refuses absolute paths and `..` by default.
 */
import { mkdirSync, renameSync } from "node:fs";
import { x as untar } from "tar";
import { findTool } from "./exec.ts";

/** One member of an ar archive: its name and where its bytes are in the file. */
export interface ArMember {
  name: string;
  offset: number;
  size: number;
}

const AR_MAGIC = "!<arch>\n";
const AR_HEADER = 60;

/**
 * The member table of an ar archive (`bytes` needs only to cover the
 * headers, but must be the whole file for the bounds checks to be exact).
 * Throws on anything that is not a well-formed archive.
 */
export function arMembers(bytes: Uint8Array, label = "archive"): ArMember[] {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  if (b.length < AR_MAGIC.length || b.toString("latin1", 0, AR_MAGIC.length) !== AR_MAGIC) throw new Error(`${label} is not an ar archive (no "!<arch>" magic)`);
  const members: ArMember[] = [];
  let pos = AR_MAGIC.length;
  while (pos < b.length) {
    if (b.length - pos < AR_HEADER) throw new Error(`${label}: truncated ar header at byte ${pos}`);
    const header = b.toString("latin1", pos, pos + AR_HEADER);
    if (header.slice(58, 60) !== "`\n") throw new Error(`${label}: bad ar header terminator at byte ${pos}`);
    // GNU ar ends names with "/"; BSD-style long names ("#1/N") never occur in .debs.
    const name = header.slice(0, 16).trimEnd().replace(/\/$/, "");
    const sizeText = header.slice(48, 58).trim();
    if (!/^\d+$/.test(sizeText)) throw new Error(`${label}: bad ar member size "${sizeText}" for "${name}"`);
    const size = Number(sizeText);
    const offset = pos + AR_HEADER;
    if (offset + size > b.length) throw new Error(`${label}: member "${name}" (${size} bytes) runs past the end of the file`);
    members.push({ name, offset, size });
    pos = offset + size + (size % 2);
  }
  return members;
}

/** The command or function that decompresses a `data.tar.<ext>` member. */
function decompressor(name: string): "xz" | "zst" | "gz" | "none" {
  if (name === "data.tar") return "none";
  if (name.endsWith(".xz")) return "xz";
  if (name.endsWith(".zst")) return "zst";
  if (name.endsWith(".gz")) return "gz";
  throw new Error(`unsupported compression of ${name} (xz, zst, gz or none are supported)`);
}

function decompressedChunks(bytes: Uint8Array<ArrayBuffer>, m: ArMember): AsyncIterable<Uint8Array> | Uint8Array {
  const slice = bytes.subarray(m.offset, m.offset + m.size);
  switch (decompressor(m.name)) {
    case "none":
      return slice;
    case "gz":
      return Bun.gunzipSync(slice);
    case "zst":
      return Bun.zstdDecompressSync(slice);
    case "xz": {
      // (A sliced Bun.file as stdin would hand xz the whole file: pass bytes.)
      const proc = Bun.spawn([findTool("xz"), "-dc"], { stdin: slice, stdout: "pipe", stderr: "pipe", env: { LANG: "C", LC_ALL: "C" } });
      const errText = new Response(proc.stderr).text();
      return (async function* () {
        for await (const chunk of proc.stdout) yield chunk;
        const code = await proc.exited;
        if (code !== 0) throw new Error(`xz -dc of ${m.name} failed (exit ${code}): ${(await errText).trim()}`);
      })();
    }
  }
}

/**
 * Extract the `data.tar.*` of the package at `debPath` into `dest` (created
 * if missing), as `dpkg-deb -x` would. Returns the member name it unpacked.
 */
export async function unpackDeb(debPath: string, dest: string): Promise<string> {
  // The member table sits in the first few hundred bytes, but arMembers checks
  // sizes against the real length, so read the file once (a kernel is ~30 MB).
  const bytes = new Uint8Array(await Bun.file(debPath).arrayBuffer());
  const members = arMembers(bytes, debPath);
  if (members[0]?.name !== "debian-binary") throw new Error(`${debPath} is not a Debian package (first member is "${members[0]?.name ?? "none"}", not debian-binary)`);
  const data = members.find((m) => m.name.startsWith("data.tar"));
  if (!data) throw new Error(`${debPath} has no data.tar member (members: ${members.map((m) => m.name).join(", ")})`);
  mkdirSync(dest, { recursive: true });
  const sink = untar({ cwd: dest, strict: true, preserveOwner: false });
  const done = new Promise<void>((resolve, reject) => {
    sink.on("error", reject);
    sink.on("close", () => resolve());
  });
  const source = decompressedChunks(bytes, data);
  if (source instanceof Uint8Array) sink.end(Buffer.from(source));
  else {
    for await (const chunk of source) {
      // Respect backpressure: an unpacked kernel is ~150 MB.
      if (!sink.write(Buffer.from(chunk))) await new Promise<void>((r) => sink.once("drain", () => r()));
    }
    sink.end();
  }
  await done;
  return data.name;
}

/**
 * Move an unpacked package tree into its cache place. Another process may
 * have unpacked the same package first; its tree is identical, so that is
 * not an error.
 */
export function moveTreeIntoPlace(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "ENOTEMPTY" && code !== "EEXIST") throw err;
  }
}

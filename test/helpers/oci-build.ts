/**
 * Test image builder: layers as tar (optionally gzip/zstd) written entry by
 * entry with the `tar` package's Header/Pax encoders (so tests can also make
 * hostile entries), plus config, manifest and index documents.
 */
import { Header, Pax } from "tar";

/** One entry of a test layer. */
export interface TestEntry {
  path: string;
  type?: "File" | "Directory" | "SymbolicLink" | "Link" | "CharacterDevice" | "BlockDevice" | "FIFO";
  content?: string | Uint8Array;
  mode?: number;
  uid?: number;
  gid?: number;
  linkpath?: string;
  devmaj?: number;
  devmin?: number;
  /** Declared size, to fake a huge entry without writing it. */
  declaredSize?: number;
}

/** A built layer blob. */
export interface TestLayer {
  bytes: Uint8Array;
  digest: string;
  diffId: string;
  mediaType: string;
  tar: Uint8Array;
}

const sha = (b: Uint8Array) => `sha256:${new Bun.CryptoHasher("sha256").update(b).digest("hex")}`;

/** An uncompressed tar of the entries. */
export function tarOf(entries: TestEntry[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const e of entries) {
    const type = e.type ?? "File";
    const data = typeof e.content === "string" ? new TextEncoder().encode(e.content) : (e.content ?? new Uint8Array());
    const size = type === "File" ? (e.declaredSize ?? data.byteLength) : 0;
    const fields = { path: e.path, mode: e.mode ?? (type === "Directory" ? 0o755 : 0o644), uid: e.uid ?? 0, gid: e.gid ?? 0, size, mtime: new Date(1_700_000_000_000), type, linkpath: e.linkpath, devmaj: e.devmaj ?? 0, devmin: e.devmin ?? 0 };
    if (e.path.length > 99 || (e.linkpath?.length ?? 0) > 99) parts.push(new Pax({ ...fields, atime: undefined, ctime: undefined } as never).encode());
    const h = Buffer.alloc(512);
    new Header(fields).encode(h, 0);
    parts.push(h);
    if (type === "File" && e.declaredSize === undefined) {
      parts.push(data);
      const pad = (512 - (data.byteLength % 512)) % 512;
      if (pad) parts.push(new Uint8Array(pad));
    }
  }
  parts.push(new Uint8Array(1024));
  return Buffer.concat(parts);
}

/** Build a layer blob; gzip by default. */
export function makeLayer(entries: TestEntry[], compression: "gzip" | "zstd" | "none" = "gzip"): TestLayer {
  const tar = tarOf(entries) as Uint8Array<ArrayBuffer>;
  const bytes = compression === "gzip" ? Bun.gzipSync(tar) : compression === "zstd" ? Bun.zstdCompressSync(tar) : tar;
  const mediaType = `application/vnd.oci.image.layer.v1.tar${compression === "none" ? "" : `+${compression}`}`;
  return { bytes, digest: sha(bytes), diffId: sha(tar), mediaType, tar };
}

/** A JSON document with its digest. */
export interface TestDoc {
  bytes: Uint8Array;
  digest: string;
  mediaType: string;
}

/** A single-platform test image. */
export interface TestImage {
  layers: TestLayer[];
  config: TestDoc;
  manifest: TestDoc;
  architecture: string;
}

function doc(obj: unknown, mediaType: string): TestDoc {
  const bytes = new TextEncoder().encode(JSON.stringify(obj));
  return { bytes, digest: sha(bytes), mediaType };
}

/** The host's OCI architecture name. */
export const hostArch = process.arch === "x64" ? "amd64" : "arm64";

/** Build config + manifest for some layers. */
export function makeImage(layers: TestLayer[], opts: { architecture?: string; env?: string[]; workingDir?: string; docker?: boolean; cmd?: string[] } = {}): TestImage {
  const architecture = opts.architecture ?? hostArch;
  const config = doc(
    { architecture, os: "linux", config: { Env: opts.env ?? ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], WorkingDir: opts.workingDir ?? "", Cmd: opts.cmd ?? ["/bin/sh"] }, rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) } },
    opts.docker ? "application/vnd.docker.container.image.v1+json" : "application/vnd.oci.image.config.v1+json",
  );
  const mt = opts.docker ? "application/vnd.docker.distribution.manifest.v2+json" : "application/vnd.oci.image.manifest.v1+json";
  const manifest = doc(
    {
      schemaVersion: 2,
      mediaType: mt,
      config: { mediaType: config.mediaType, digest: config.digest, size: config.bytes.byteLength },
      layers: layers.map((l) => ({ mediaType: opts.docker ? "application/vnd.docker.image.rootfs.diff.tar.gzip" : l.mediaType, digest: l.digest, size: l.bytes.byteLength })),
    },
    mt,
  );
  return { layers, config, manifest, architecture };
}

/** An OCI index over several images (one per architecture). */
export function makeIndex(images: TestImage[]): TestDoc {
  return doc(
    {
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: images.map((i) => ({ mediaType: i.manifest.mediaType, digest: i.manifest.digest, size: i.manifest.bytes.byteLength, platform: { os: "linux", architecture: i.architecture, ...(i.architecture === "arm64" ? { variant: "v8" } : {}) } })),
    },
    "application/vnd.oci.image.index.v1+json",
  );
}

/** A layer holding busybox-static and a few applet symlinks. */
export async function busyboxLayer(): Promise<TestLayer> {
  const bb = new Uint8Array(await Bun.file("/bin/busybox").arrayBuffer());
  return makeLayer([
    { path: "bin/", type: "Directory" },
    { path: "bin/busybox", content: bb, mode: 0o755 },
    { path: "bin/sh", type: "SymbolicLink", linkpath: "busybox", mode: 0o777 },
    { path: "bin/ls", type: "SymbolicLink", linkpath: "busybox", mode: 0o777 },
    { path: "etc/", type: "Directory" },
    { path: "etc/passwd", content: "root:x:0:0:root:/root:/bin/sh\n" },
  ]);
}

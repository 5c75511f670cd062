/**
 * @module daemon/images/manifest
 * OCI / Docker v2 manifest, index and config documents: media types, zod
 * schemas (lenient: registries add fields), and host-platform selection from
 * an index.
 */
import { z } from "zod";
import { RegistryError } from "./errors.ts";

/** Manifest and index media types we accept. */
export const MediaType = {
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  dockerList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  dockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  ociLayerTar: "application/vnd.oci.image.layer.v1.tar",
  ociLayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  ociLayerZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
} as const;

/** The Accept header for manifest requests: every manifest and index type. */
export const MANIFEST_ACCEPT = [MediaType.ociIndex, MediaType.ociManifest, MediaType.dockerList, MediaType.dockerManifest].join(", ");

/** A content descriptor. */
export const Descriptor = z.object({
  mediaType: z.string(),
  digest: z.string().regex(/^sha256:[a-f0-9]{64}$/, "must be a sha256 digest"),
  size: z.number().int().nonnegative(),
  urls: z.array(z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  platform: z.object({ os: z.string(), architecture: z.string(), variant: z.string().optional() }).loose().optional(),
});
export type Descriptor = z.infer<typeof Descriptor>;

/** An image manifest (OCI or Docker schema 2). */
export const ImageManifest = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  config: Descriptor,
  layers: z.array(Descriptor),
});
export type ImageManifest = z.infer<typeof ImageManifest>;

/** An image index / manifest list. */
export const ImageIndex = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  manifests: z.array(Descriptor),
});
export type ImageIndex = z.infer<typeof ImageIndex>;

/** The parts of the image config the runtime uses. */
export const ImageConfig = z.object({
  architecture: z.string().optional(),
  os: z.string().optional(),
  variant: z.string().optional(),
  config: z
    .object({
      Env: z.array(z.string()).nullish(),
      WorkingDir: z.string().nullish(),
      Entrypoint: z.array(z.string()).nullish(),
      Cmd: z.array(z.string()).nullish(),
      User: z.string().nullish(),
      ExposedPorts: z.record(z.string(), z.unknown()).nullish(),
      StopSignal: z.string().nullish(),
      Labels: z.record(z.string(), z.string()).nullish(),
    })
    .loose()
    .nullish(),
  rootfs: z.object({ type: z.string(), diff_ids: z.array(z.string()) }).optional(),
});
export type ImageConfig = z.infer<typeof ImageConfig>;

/** Layer media types we can unpack. */
export function isLayerMediaType(mt: string): boolean {
  return /^application\/vnd\.oci\.image\.layer\.(nondistributable\.)?v1\.tar(\+gzip|\+zstd)?$/.test(mt) || /^application\/vnd\.docker\.image\.rootfs\.(foreign\.)?diff\.tar(\.gzip)?$/.test(mt);
}

/** An OS/architecture pair such as linux/amd64. */
export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

/** The platform this process runs on, as OCI names it. */
export function hostPlatform(): Platform {
  const arch = process.arch === "x64" ? "amd64" : process.arch === "arm64" ? "arm64" : process.arch;
  return { os: "linux", architecture: arch, ...(arch === "arm64" ? { variant: "v8" } : {}) };
}

/** `linux/arm64/v8` style label. */
export function platformLabel(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join("/");
}

/** A parsed manifest document of either kind. */
export type ParsedManifest = { kind: "index"; index: ImageIndex } | { kind: "manifest"; manifest: ImageManifest };

/** Parse manifest bytes; `contentType` (the header) helps when the body omits mediaType. */
export function parseManifest(bytes: Uint8Array, what: string, contentType?: string): ParsedManifest {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch (err) {
    throw new RegistryError(`manifest of ${what} is not valid JSON: ${(err as Error).message}`);
  }
  const obj = json as { mediaType?: string; manifests?: unknown; schemaVersion?: unknown };
  const mt = obj.mediaType ?? contentType?.split(";")[0]?.trim();
  if (obj.schemaVersion === 1) throw new RegistryError(`manifest of ${what} is Docker schema 1`, "schema 1 images are deprecated and unsupported; push the image again with a current client");
  const isIndex = mt === MediaType.ociIndex || mt === MediaType.dockerList || (mt === undefined && Array.isArray(obj.manifests));
  const parsed = (isIndex ? ImageIndex : ImageManifest).safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new RegistryError(`manifest of ${what} is malformed: ${issue?.path.join(".")}: ${issue?.message}`);
  }
  return isIndex ? { kind: "index", index: parsed.data as ImageIndex } : { kind: "manifest", manifest: parsed.data as ImageManifest };
}

/** Pick the host platform's manifest from an index (linux/amd64 or linux/arm64). */
export function selectPlatform(index: ImageIndex, what: string, want: Platform = hostPlatform()): Descriptor {
  const candidates = index.manifests.filter((m) => m.platform?.os === want.os && m.platform?.architecture === want.architecture);
  const exact = candidates.find((m) => (m.platform?.variant ?? want.variant) === want.variant);
  const chosen = exact ?? candidates[0];
  if (chosen) return chosen;
  const have = index.manifests.filter((m) => m.platform && m.platform.os !== "unknown").map((m) => platformLabel(m.platform!));
  throw new RegistryError(`${what} has no image for ${platformLabel(want)}`, `available platforms: ${have.join(", ") || "none"}`);
}

/**
 * Writers for the offline image inputs: an OCI image layout directory and a
 * `docker save`-style tarball (legacy layout: <id>/layer.tar + manifest.json).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { create } from "tar";
import type { TestDoc, TestImage } from "./oci-build.ts";

/** Write `image` (or an index over images) into an OCI layout at `dir`, tagged `tag`. */
export function writeOciLayout(dir: string, images: TestImage[], tag: string, index?: TestDoc): void {
  const blobs = join(dir, "blobs", "sha256");
  mkdirSync(blobs, { recursive: true });
  const put = (digest: string, bytes: Uint8Array) => writeFileSync(join(blobs, digest.slice(7)), bytes);
  for (const img of images) {
    for (const l of img.layers) put(l.digest, l.bytes);
    put(img.config.digest, img.config.bytes);
    put(img.manifest.digest, img.manifest.bytes);
  }
  const top = index ?? images[0]!.manifest;
  if (index) put(index.digest, index.bytes);
  writeFileSync(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  writeFileSync(join(dir, "index.json"), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: top.mediaType, digest: top.digest, size: top.bytes.byteLength, annotations: { "org.opencontainers.image.ref.name": tag } }] }));
}

/** Write a docker-save tarball of `image` (uncompressed layers) to `file`, staging in `work`. */
export async function writeDockerArchive(file: string, work: string, image: TestImage, repoTag: string): Promise<void> {
  mkdirSync(work, { recursive: true });
  const names: string[] = [];
  for (const [i, l] of image.layers.entries()) {
    const d = `layer${i}`;
    mkdirSync(join(work, d), { recursive: true });
    writeFileSync(join(work, d, "layer.tar"), l.tar);
    names.push(`${d}/layer.tar`);
  }
  const cfg = `${image.config.digest.slice(7)}.json`;
  writeFileSync(join(work, cfg), image.config.bytes);
  writeFileSync(join(work, "manifest.json"), JSON.stringify([{ Config: cfg, RepoTags: [repoTag], Layers: names }]));
  await create({ file, cwd: work, portable: true }, ["manifest.json", cfg, ...names.map((n) => n.split("/")[0]!)]);
}

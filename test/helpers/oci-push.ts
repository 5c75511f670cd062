/**
 * Minimal distribution v2 push for tests: monolithic blob uploads
 * (POST /blobs/uploads/, PUT ?digest=) and manifest PUTs.
 */
import type { TestDoc, TestImage } from "./oci-build.ts";

/** Where to push and how to authenticate. */
export interface PushTarget {
  /** `http://127.0.0.1:PORT` */
  base: string;
  repo: string;
  /** Authorization header value, if the registry needs one. */
  auth?: string;
}

async function check(res: Response, what: string): Promise<void> {
  if (!res.ok) throw new Error(`push ${what}: HTTP ${res.status} ${await res.text()}`);
}

/** Upload one blob in a single request (skipped when the registry already has it). */
export async function pushBlob(t: PushTarget, digest: string, bytes: Uint8Array): Promise<void> {
  const headers: Record<string, string> = t.auth ? { authorization: t.auth } : {};
  const head = await fetch(`${t.base}/v2/${t.repo}/blobs/${digest}`, { method: "HEAD", headers });
  if (head.ok) return;
  const start = await fetch(`${t.base}/v2/${t.repo}/blobs/uploads/`, { method: "POST", headers });
  await check(start, `upload start for ${digest}`);
  const loc = new URL(start.headers.get("location")!, t.base);
  loc.searchParams.set("digest", digest);
  const put = await fetch(loc, { method: "PUT", headers: { ...headers, "content-type": "application/octet-stream" }, body: bytes });
  await check(put, `blob ${digest}`);
}

/** PUT a manifest or index under a tag or digest. */
export async function pushManifest(t: PushTarget, reference: string, d: TestDoc): Promise<void> {
  const res = await fetch(`${t.base}/v2/${t.repo}/manifests/${reference}`, { method: "PUT", headers: { ...(t.auth ? { authorization: t.auth } : {}), "content-type": d.mediaType }, body: d.bytes });
  await check(res, `manifest ${reference}`);
}

/** Push an image's blobs and manifest; tags it when `tag` is given (else by digest only). */
export async function pushImage(t: PushTarget, image: TestImage, tag?: string): Promise<void> {
  for (const l of image.layers) await pushBlob(t, l.digest, l.bytes);
  await pushBlob(t, image.config.digest, image.config.bytes);
  await pushManifest(t, tag ?? image.manifest.digest, image.manifest);
}

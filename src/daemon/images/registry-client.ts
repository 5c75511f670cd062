/**
 * @module daemon/images/registry-client
 * A distribution v2 API client: manifests (OCI and Docker, indexes and
 * lists) and blobs, with the token/Basic auth of {@link RegistryAuth}. Every
 * manifest is checked against its digest; blobs are streamed into the
 * {@link BlobCache}, which verifies them before they become visible (and
 * holds each to its declared size). Manifest and error bodies are read through
 * {@link readBounded}: a registry cannot make the daemon buffer more than the
 * limit, however it frames the body.
 */
import type { BlobCache } from "./blob-cache.ts";
import { readBounded, readErrorText } from "./bounded-read.ts";
import { sha256Digest } from "./digest.ts";
import { DigestMismatch, imageNotFound, RegistryError } from "./errors.ts";
import { MANIFEST_ACCEPT, type Descriptor } from "./manifest.ts";
import type { RegistryReference } from "./reference.ts";
import { DEFAULT_IMAGE_LIMITS, MAX_ERROR_BODY_BYTES } from "./limits.ts";
import { type Credentials, RegistryAuth } from "./registry-auth.ts";
import { transportFor } from "./transport.ts";

/** A fetched manifest document. */
export interface FetchedManifest {
  bytes: Uint8Array;
  digest: string;
  contentType?: string;
}

/** A client for one repository of one registry. */
export class RegistryClient {
  readonly baseUrl: string;
  private readonly auth: RegistryAuth;
  private readonly scope: string;

  constructor(
    readonly ref: RegistryReference,
    credentials?: Credentials,
    private readonly maxManifestBytes = DEFAULT_IMAGE_LIMITS.maxManifestBytes,
  ) {
    this.baseUrl = `${transportFor(ref.registry)}://${ref.registry}/v2/${ref.repository}`;
    this.auth = new RegistryAuth(ref.registry, credentials);
    this.scope = `repository:${ref.repository}:pull`;
  }

  /** GET with auth; answers one 401 challenge and retries. */
  private async get(path: string, headers: Record<string, string> = {}): Promise<Response> {
    const url = `${this.baseUrl}${path}`;
    for (let attempt = 0; ; attempt++) {
      const h = { ...headers };
      const a = this.auth.header();
      if (a) h.authorization = a;
      let res: Response;
      try {
        res = await fetch(url, { headers: h });
      } catch (err) {
        const hint = url.startsWith("https:") ? `if ${this.ref.registry} speaks plain HTTP, add it to AEGIS_INSECURE_REGISTRIES` : undefined;
        throw new RegistryError(`cannot reach registry ${this.ref.registry} (${url}): ${(err as Error).message}`, hint);
      }
      if (res.status !== 401 || attempt > 0) return res;
      await res.body?.cancel();
      await this.auth.answer(res, this.scope);
    }
  }

  private async fail(res: Response, what: string): Promise<never> {
    const body = (await readErrorText(res, MAX_ERROR_BODY_BYTES)).slice(0, 300);
    if (res.status === 404) throw imageNotFound(`${what} not found in ${this.ref.registry}/${this.ref.repository}`, "check the repository name and tag (docker.io images without a '/' live under library/)");
    if (res.status === 401 || res.status === 403) throw new RegistryError(`registry ${this.ref.registry} denied access to ${what} (HTTP ${res.status})`, "the repository may be private: pass credentials for this registry");
    throw new RegistryError(`registry ${this.ref.registry} answered HTTP ${res.status} for ${what}: ${body}`);
  }

  /** Fetch a manifest or index by tag or digest, verifying its digest. */
  async manifest(reference: string): Promise<FetchedManifest> {
    const what = `manifest ${reference}`;
    const res = await this.get(`/manifests/${reference}`, { accept: MANIFEST_ACCEPT });
    if (!res.ok) return this.fail(res, what);
    const bytes = await readBounded(res, this.maxManifestBytes, `${what} from ${this.ref.registry}/${this.ref.repository}`);
    const digest = sha256Digest(bytes);
    const expected = reference.startsWith("sha256:") ? reference : res.headers.get("docker-content-digest");
    if (expected && expected !== digest) throw new DigestMismatch(`${what} of ${this.ref.canonical}`, expected, digest);
    return { bytes, digest, contentType: res.headers.get("content-type") ?? undefined };
  }

  /** Download a blob into the cache (verified there); returns its path. */
  async blob(desc: Descriptor, cache: BlobCache, what: string, onBytes?: (n: number) => void): Promise<string> {
    const res = await this.get(`/blobs/${desc.digest}`);
    if (!res.ok) return this.fail(res, what);
    if (!res.body) throw new RegistryError(`registry ${this.ref.registry} sent an empty body for ${what}`);
    return cache.write(desc.digest, res.body, { what, size: desc.size, onBytes });
  }
}

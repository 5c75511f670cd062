/**
 * @module daemon/images/reference
 * Parsing of image references: Docker-style registry names
 * (`alpine:3.21`, `ghcr.io/org/name:tag`, `host:port/name@sha256:...`),
 * `oci:PATH[:TAG]` (an OCI image layout directory) and `docker-archive:PATH`
 * (a `docker save` tarball). The grammar follows distribution/reference.
 */
import { resolve } from "node:path";
import { badReference } from "./errors.ts";

/** Docker Hub's API endpoint; `docker.io` names are rewritten to it. */
export const DOCKER_HUB_REGISTRY = "registry-1.docker.io";

/** A reference to an image in a distribution v2 registry. */
export interface RegistryReference {
  kind: "registry";
  /** API host, with port if any (`registry-1.docker.io`, `localhost:5000`). */
  registry: string;
  /** Repository path (`library/alpine`). */
  repository: string;
  /** Tag; `latest` when neither tag nor digest was given. */
  tag?: string;
  /** `sha256:<hex>` when pinned; wins over the tag. */
  digest?: string;
  /** Normalised form used as the image's name in the store. */
  canonical: string;
}

/** A reference to an OCI image layout directory. */
export interface OciLayoutReference {
  kind: "oci";
  path: string;
  tag?: string;
  canonical: string;
}

/** A reference to a `docker save` tarball. */
export interface DockerArchiveReference {
  kind: "docker-archive";
  path: string;
  canonical: string;
}

/** Any parsed image reference. */
export type ImageReference = RegistryReference | OciLayoutReference | DockerArchiveReference;

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const HOST_LABEL = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;

/** True for a well-formed `sha256:<64 lowercase hex>` digest. */
export function isDigest(s: string): boolean {
  return DIGEST.test(s);
}

function checkDigest(ref: string, digest: string): void {
  if (DIGEST.test(digest)) return;
  if (/^[a-z0-9]+([+._-][a-z0-9]+)*:/.test(digest) && !digest.startsWith("sha256:")) {
    throw badReference(ref, `digest algorithm "${digest.split(":")[0]}"`, "is not supported", "only sha256 digests are supported");
  }
  throw badReference(ref, `digest "${digest}"`, "is not sha256: followed by 64 lowercase hex digits");
}

function checkHost(ref: string, host: string): void {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:]+)(?::(\d+))?$/.exec(host);
  const name = m?.[1];
  const port = m?.[2];
  const okName = name !== undefined && (name.startsWith("[") || name.split(".").every((l) => HOST_LABEL.test(l)));
  if (!okName || (port !== undefined && (Number(port) < 1 || Number(port) > 65535))) {
    throw badReference(ref, `registry host "${host}"`, "is not a valid host[:port]");
  }
}

function looksLikeHost(first: string): boolean {
  return first.includes(".") || first.includes(":") || first === "localhost" || first.startsWith("[");
}

/** Parse a registry reference such as `alpine`, `python:3.12-alpine` or `localhost:5000/a/b@sha256:...`. */
export function parseRegistryReference(ref: string): RegistryReference {
  if (ref.length === 0) throw badReference(ref, "the reference", "is empty");
  if (/\s/.test(ref)) throw badReference(ref, "the reference", "contains whitespace");
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    checkDigest(ref, digest);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf("/");
  const colon = rest.lastIndexOf(":");
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw badReference(ref, `tag "${tag}"`, "must be 1-128 of [A-Za-z0-9_.-], not starting with '.' or '-'");
  }
  const parts = rest.split("/");
  let registry = DOCKER_HUB_REGISTRY;
  let domain = "docker.io";
  if (parts.length > 1 && looksLikeHost(parts[0]!)) {
    domain = parts.shift()!;
    checkHost(ref, domain);
    registry = domain === "docker.io" || domain === "index.docker.io" ? DOCKER_HUB_REGISTRY : domain;
    if (registry === DOCKER_HUB_REGISTRY) domain = "docker.io";
  }
  if (registry === DOCKER_HUB_REGISTRY && parts.length === 1) parts.unshift("library");
  for (const p of parts) {
    if (!COMPONENT.test(p)) {
      const why = /[A-Z]/.test(p) ? "must be lowercase" : "must be lowercase letters and digits separated by '.', '_', '__' or '-'";
      throw badReference(ref, `repository component "${p}"`, why);
    }
  }
  const repository = parts.join("/");
  if (domain.length + 1 + repository.length > 255) throw badReference(ref, "the repository name", "is longer than 255 characters");
  if (!tag && !digest) tag = "latest";
  const canonical = `${domain}/${repository}${digest ? `@${digest}` : `:${tag}`}`;
  return { kind: "registry", registry, repository, tag, digest, canonical };
}

/**
 * Parse any reference. `oci:PATH[:TAG]` splits at the first colon after the
 * prefix, so layout paths cannot contain ':' (as in containers/image).
 */
export function parseReference(ref: string): ImageReference {
  if (ref.startsWith("oci:")) {
    const body = ref.slice(4);
    const i = body.indexOf(":");
    const path = i >= 0 ? body.slice(0, i) : body;
    const tag = i >= 0 ? body.slice(i + 1) : undefined;
    if (path.length === 0) throw badReference(ref, "the layout path", "is empty", "write oci:DIR or oci:DIR:TAG");
    if (tag !== undefined && tag.length === 0) throw badReference(ref, "the tag after the layout path", "is empty", "drop the trailing ':' or name a tag");
    const abs = resolve(path);
    return { kind: "oci", path: abs, tag, canonical: `oci:${abs}${tag ? `:${tag}` : ""}` };
  }
  if (ref.startsWith("docker-archive:")) {
    const path = ref.slice("docker-archive:".length);
    if (path.length === 0) throw badReference(ref, "the archive path", "is empty", "write docker-archive:FILE.tar");
    const abs = resolve(path);
    return { kind: "docker-archive", path: abs, canonical: `docker-archive:${abs}` };
  }
  return parseRegistryReference(ref);
}

/**
 * @module daemon/instances/capabilities
 * The spawn capability policy aegisd applies to requests that arrive from a
 * guest's MCP server (`mcp.*` on the control channel). Pure functions: the
 * caller passes the stored capabilities, depth and child count of the calling
 * instance (never anything the guest claims about itself) and acts only on
 * `ok: true`, so a refused request creates nothing.
 *
 * Narrowing. A child's capabilities are its parent's, never wider:
 * - `spawn` turns off once the child sits at `max_depth` (depth is absolute:
 *   a top-level instance is 0, so `max_depth: 1` allows children but no
 *   grandchildren);
 * - `allowed_secrets` becomes the secrets the child was given (it cannot pass
 *   on what it does not hold);
 * - `max_memory_mb` / `max_vcpus` shrink to the child's own allocation (no
 *   grandchild is bigger than its parent);
 * - `max_depth`, `max_children`, `allowed_images` and `max_exposed_ports` are
 *   inherited unchanged.
 */
import { AppError } from "../../api/errors.ts";
import { BASE_IMAGE, DEFAULT_CAPABILITIES, SpawnCapabilities } from "../../api/schema/mcp.ts";
import { type ImageReference, parseReference } from "../images/reference.ts";

export { DEFAULT_CAPABILITIES, SpawnCapabilities };

/** Which limit refused a request: a capability field, a malformed image, or ownership. */
export type DeniedLimit = keyof SpawnCapabilities | "image" | "ownership";

/** A refusal: `reason` names the violated limit and the rejected value; `hint` says what would allow it. */
export interface Denied {
  ok: false;
  limit: DeniedLimit;
  reason: string;
  hint: string;
}

/** The calling instance, as the daemon knows it. */
export interface SpawnParent {
  caps: SpawnCapabilities;
  /** 0 for a top-level instance. */
  depth: number;
  /** Children that exist now (stopped ones count until deleted). */
  children: number;
}

/** A spawn request after the daemon applied its defaults (memory, vCPUs). */
export interface SpawnRequest {
  /** An image reference, or `@base` for the base rootfs. */
  image: string;
  memory_mb: number;
  vcpus: number;
  secrets: string[];
  /** Guest ports of the child to expose. */
  expose: number[];
}

/** The verdict on a spawn: the child's capabilities and depth, or why not. */
export type SpawnDecision = { ok: true; childCaps: SpawnCapabilities; depth: number } | Denied;

const GRANT_HINT = "the host grants capabilities in the kit manifest or with instance start flags; a guest cannot change its own";

function deny(limit: DeniedLimit, reason: string, hint = GRANT_HINT): Denied {
  return { ok: false, limit, reason, hint };
}

function list(items: string[]): string {
  return items.length === 0 ? "none" : items.join(", ");
}

/** Check a guest's request to start a child VM against the parent's capabilities. */
export function checkSpawn(parent: SpawnParent, request: SpawnRequest): SpawnDecision {
  const caps = parent.caps;
  if (!caps.spawn) return deny("spawn", "this instance may not start child instances (capability spawn is false)");
  const depth = parent.depth + 1;
  if (depth > caps.max_depth) return deny("max_depth", `a child would be at depth ${depth}, beyond max_depth ${caps.max_depth}`);
  if (parent.children >= caps.max_children) {
    return deny("max_children", `this instance already has ${parent.children} child instance(s); max_children is ${caps.max_children}`, "stop and delete a child first (instance_stop with delete: true)");
  }
  const image = checkImage(caps.allowed_images, request.image);
  if (image) return image;
  if (request.memory_mb > caps.max_memory_mb) return deny("max_memory_mb", `memory_mb ${request.memory_mb} exceeds max_memory_mb ${caps.max_memory_mb}`, `ask for at most ${caps.max_memory_mb} MiB`);
  if (request.vcpus > caps.max_vcpus) return deny("max_vcpus", `vcpus ${request.vcpus} exceeds max_vcpus ${caps.max_vcpus}`, `ask for at most ${caps.max_vcpus} vCPU(s)`);
  const secret = request.secrets.find((s) => !caps.allowed_secrets.includes(s));
  if (secret !== undefined) {
    return deny("allowed_secrets", `secret "${secret}" is not in allowed_secrets (${list(caps.allowed_secrets)})`, "pass only the secrets self_info lists under capabilities.allowed_secrets");
  }
  const ports = new Set(request.expose).size;
  if (ports > caps.max_exposed_ports) return deny("max_exposed_ports", `${ports} exposed port(s) exceed max_exposed_ports ${caps.max_exposed_ports}`, `expose at most ${caps.max_exposed_ports} port(s)`);
  const childCaps: SpawnCapabilities = {
    spawn: depth < caps.max_depth,
    max_depth: caps.max_depth,
    max_children: caps.max_children,
    allowed_images: [...caps.allowed_images],
    max_memory_mb: Math.min(caps.max_memory_mb, request.memory_mb),
    max_vcpus: Math.min(caps.max_vcpus, request.vcpus),
    allowed_secrets: [...new Set(request.secrets)],
    max_exposed_ports: caps.max_exposed_ports,
  };
  return { ok: true, childCaps, depth };
}

/** Check that an instance may expose one more of its own guest ports. Exposing an exposed port again is allowed (idempotent). */
export function checkExpose(instance: { caps: SpawnCapabilities; exposed: number[] }, port: number): { ok: true } | Denied {
  if (instance.exposed.includes(port)) return { ok: true };
  const count = new Set(instance.exposed).size;
  if (count >= instance.caps.max_exposed_ports) {
    return deny("max_exposed_ports", `cannot expose port ${port}: this instance already exposes ${count} port(s); max_exposed_ports is ${instance.caps.max_exposed_ports}`, "unexpose a port first (unexpose_port)");
  }
  return { ok: true };
}

/**
 * Check that `target` (looked up by the name the guest gave, `asked`) is a
 * child of the caller. An unknown name and someone else's instance get the
 * same answer, so a guest cannot probe which other instances exist.
 */
export function checkOwnership(callerId: string, target: { id: string; parent_id: string | null } | undefined, asked: string): { ok: true } | Denied {
  if (target !== undefined && target.parent_id === callerId) return { ok: true };
  return deny("ownership", `instance "${asked}" is not a child of this instance`, "instance_list shows this instance's children; a guest may inspect and stop only those");
}

/** The instances whose parent is the caller. */
export function ownChildren<T extends { parent_id: string | null }>(callerId: string, instances: T[]): T[] {
  return instances.filter((i) => i.parent_id === callerId);
}

/** Undefined when `image` matches an allowed pattern (see `ImagePattern`), else the refusal. */
export function checkImage(patterns: string[], image: string): Denied | undefined {
  if (image === BASE_IMAGE) {
    if (patterns.includes(BASE_IMAGE)) return undefined;
    return deny("allowed_images", `the base rootfs (${BASE_IMAGE}) is not in allowed_images (${list(patterns)})`, "self_info lists the allowed images under capabilities.allowed_images");
  }
  let ref: ImageReference;
  try {
    ref = parseReference(image);
  } catch (err) {
    // Only a malformed reference is the guest's mistake; anything else is a bug and propagates.
    if (err instanceof AppError && err.code === "invalid_request") return deny("image", err.message, err.hint ?? "use a reference such as alpine:3.21");
    throw err;
  }
  if (patterns.some((p) => imageMatches(p, ref))) return undefined;
  return deny("allowed_images", `image "${image}" (${ref.canonical}) is not in allowed_images (${list(patterns)})`, "self_info lists the allowed images under capabilities.allowed_images");
}

/**
 * Does one pattern allow a parsed reference. `*` and prefix globs match only
 * registry images: a local `oci:`/`docker-archive:` reference names a host
 * path, so it must be listed exactly.
 */
export function imageMatches(pattern: string, ref: ImageReference): boolean {
  if (pattern.endsWith("*")) return ref.kind === "registry" && ref.canonical.startsWith(pattern.slice(0, -1));
  let allowed: ImageReference;
  try {
    allowed = parseReference(pattern);
  } catch (err) {
    // A malformed pattern allows nothing (the schema cannot parse references without the daemon).
    if (err instanceof AppError && err.code === "invalid_request") return false;
    throw err;
  }
  if (allowed.kind !== ref.kind) return false;
  if (allowed.kind === "registry" && ref.kind === "registry" && !hasTagOrDigest(pattern)) {
    return allowed.registry === ref.registry && allowed.repository === ref.repository;
  }
  return allowed.canonical === ref.canonical;
}

/** True when a registry reference string names a tag or digest (`a:1`, `a@sha256:...`), not just a repository. */
function hasTagOrDigest(ref: string): boolean {
  if (ref.includes("@")) return true;
  const last = ref.slice(ref.lastIndexOf("/") + 1);
  return last.includes(":");
}

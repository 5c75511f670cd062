/**
 * @module daemon/images
 * The OCI image pipeline as one library for the daemon: references
 * (registry names, `oci:PATH[:TAG]`, `docker-archive:PATH`), a verified
 * content-addressed blob cache, a distribution v2 client with bearer/Basic
 * auth, layer unpacking with whiteouts and escape checks, and one read-only
 * ext4 rootfs per image. The daemon uses {@link ImageStore}; everything else
 * is exported for tests and tools.
 */
export { ImageStore, type ImageStoreOptions, type PullOptions } from "./store.ts";
export type { Credentials } from "./registry-auth.ts";
export type { ImageRecord, PullProgress } from "../../api/schema/images.ts";
export { parseReference, type ImageReference } from "./reference.ts";
export { runConfig, MOUNT_POINTS } from "./rootfs.ts";
export { DEFAULT_LIMITS, type UnpackLimits } from "./unpack.ts";
export { DEFAULT_IMAGE_LIMITS, type ImageLimits, imageLimitsFromEnv } from "./limits.ts";
export { DigestMismatch, RegistryError, UnpackRefused } from "./errors.ts";

/**
 * @module api/schema/images
 * Images: pulled OCI images, each with its cached ext4 root filesystem.
 * `POST /v1/images/pull` (body {@link ImagePull}, NDJSON of {@link ImagePullEvent}),
 * `GET /v1/images` ({@link ImageList}), `DELETE /v1/images/{ref}`,
 * `POST /v1/images/gc` ({@link ImageGcResult}).
 */
import { z } from "zod";
import { Timestamp } from "./common.ts";

/** A `sha256:<64 hex>` content digest. */
export const Digest = z.string().regex(/^sha256:[a-f0-9]{64}$/, "must be sha256: followed by 64 lowercase hex digits");

/** One layer of an image, as downloaded. */
export const ImageLayer = z
  .object({
    digest: Digest,
    size: z.number().int().nonnegative(),
    media_type: z.string(),
  })
  .strict();
export type ImageLayer = z.infer<typeof ImageLayer>;

/**
 * What an image's config says about running it (OCI image config `config`
 * fields, Docker's rules apply: see daemon/images/process-spec.ts). Kept in
 * the image record so nothing is re-read from the registry.
 */
export const ImageRunConfig = z
  .object({
    /** `Entrypoint`, or null when unset. */
    entrypoint: z.array(z.string()).nullable(),
    /** `Cmd`, or null when unset. */
    cmd: z.array(z.string()).nullable(),
    /** `Env` as `KEY=VALUE` strings, in the image's order. */
    env: z.array(z.string()),
    /** `WorkingDir`, or null. */
    working_dir: z.string().nullable(),
    /** `User` (`name`, `uid`, `uid:gid`, `name:group`), or null for root. */
    user: z.string().nullable(),
    /** `ExposedPorts` keys such as `80/tcp`. */
    exposed_ports: z.array(z.string()),
    /** `StopSignal`, or null. */
    stop_signal: z.string().nullable(),
    /** `Labels`. */
    labels: z.record(z.string(), z.string()),
  })
  .strict();
export type ImageRunConfig = z.infer<typeof ImageRunConfig>;

/** A pulled image. Only PATH and WorkingDir of its config are used by the runtime. */
export const ImageRecord = z
  .object({
    /** Normalised reference (`docker.io/library/alpine:3.21`, `oci:/abs/dir:tag`, `docker-archive:/abs/file`). */
    ref: z.string(),
    /** Digest of the platform manifest that was unpacked. */
    digest: Digest,
    /** Digest of the multi-platform index the manifest was chosen from, if any. */
    index_digest: Digest.nullable(),
    /** Image ID: digest of the config; the rootfs is keyed by it. */
    config_digest: Digest,
    /** `linux/amd64`, `linux/arm64/v8`. */
    platform: z.string(),
    /** Sum of the layer blob sizes (compressed, as downloaded). */
    size: z.number().int().nonnegative(),
    layers: z.array(ImageLayer),
    /** Absolute path of the read-only ext4 root filesystem. */
    rootfs: z.string(),
    rootfs_size: z.number().int().nonnegative(),
    /** The config's `PATH` value, or null when it sets none. */
    env_path: z.string().nullable(),
    /** The config's `WorkingDir`, or null. */
    working_dir: z.string().nullable(),
    /** The run config (absent in records written before it was kept: re-pull to fill it). */
    config: ImageRunConfig.optional(),
    created_at: Timestamp,
  })
  .strict();
export type ImageRecord = z.infer<typeof ImageRecord>;

/** Registry credentials (Basic, or exchanged for a bearer token). */
export const RegistryCredentials = z
  .object({
    username: z.string().min(1, "must not be empty"),
    password: z.string(),
  })
  .strict();
export type RegistryCredentials = z.infer<typeof RegistryCredentials>;

/** Body of `POST /v1/images/pull`. */
export const ImagePull = z
  .object({
    ref: z.string().min(1, "must not be empty (e.g. alpine:3.21)"),
    credentials: RegistryCredentials.optional(),
  })
  .strict();
export type ImagePull = z.infer<typeof ImagePull>;

/** A pull progress event. `layer` is a layer digest; `bytes`/`total` count its download (or the rootfs size). */
export const PullProgress = z
  .object({
    phase: z.enum(["resolve", "layer", "unpack", "rootfs"]),
    layer: Digest.optional(),
    bytes: z.number().int().nonnegative().optional(),
    total: z.number().int().nonnegative().optional(),
  })
  .strict();
export type PullProgress = z.infer<typeof PullProgress>;

/** One NDJSON line of the pull stream: progress, then exactly one `done` or `error`. */
export const ImagePullEvent = z.discriminatedUnion("type", [
  z.object({ type: z.literal("progress"), progress: PullProgress }).strict(),
  z.object({ type: z.literal("done"), image: ImageRecord }).strict(),
  z.object({ type: z.literal("error"), error: z.object({ code: z.string(), message: z.string(), hint: z.string().optional() }) }).strict(),
]);
export type ImagePullEvent = z.infer<typeof ImagePullEvent>;

/** `GET /v1/images`. */
export const ImageList = z.object({ images: z.array(ImageRecord) }).strict();
export type ImageList = z.infer<typeof ImageList>;

/** Result of a garbage collection. */
export const ImageGcResult = z
  .object({
    removedBlobs: z.number().int().nonnegative(),
    removedRootfs: z.number().int().nonnegative(),
    freedBytes: z.number().int().nonnegative(),
  })
  .strict();
export type ImageGcResult = z.infer<typeof ImageGcResult>;

/** Response of `DELETE /v1/images/{ref}`: the removed reference and what garbage collection freed. */
export const ImageRemoved = z.object({ ok: z.literal(true), ref: z.string(), gc: ImageGcResult }).strict();

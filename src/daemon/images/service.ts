/**
 * @module daemon/images/service
 * The daemon's view of images: the {@link ImageStore} plus what only the
 * daemon knows — registry credentials kept as secrets, which digests releases
 * still use (so garbage collection keeps them), and get-or-pull for tasks.
 *
 * Registry credentials: a workspace secret named `REGISTRY_AUTH_<HOST>`
 * holding `user:password`, where `<HOST>` is the registry host (and port)
 * upper-cased with every other character replaced by `_` (`ghcr.io` ->
 * `REGISTRY_AUTH_GHCR_IO`, `localhost:5000` -> `REGISTRY_AUTH_LOCALHOST_5000`).
 * They are used only for that host and never logged.
 */
import { Conflict, isAppError, NotFound } from "../../api/errors.ts";
import type { ImageRecord, RegistryCredentials } from "../../api/schema/images.ts";
import type { SecretsService } from "../secrets/service.ts";
import { type ImageStore, type PullOptions, parseReference } from "./index.ts";

/** The secret name that holds credentials for a registry host. */
export function registrySecretName(host: string): string {
  return `REGISTRY_AUTH_${host.toUpperCase().replace(/[^A-Z0-9]/g, "_")}`;
}

/** Images as the daemon uses them. */
export class ImagesService {
  constructor(
    private readonly store: ImageStore,
    private readonly secrets: SecretsService,
    private readonly digestsInUse: () => string[],
  ) {}

  /** Every pulled image, newest first. */
  list(): ImageRecord[] {
    return this.store.list();
  }

  /** A pulled image; NotFound otherwise. */
  require(ref: string): ImageRecord {
    const image = this.store.get(ref);
    if (!image) throw new NotFound(`image "${ref}" is not pulled`, `pull it with 'aegis image pull ${ref}'`);
    return image;
  }

  /** A pulled image, or null (a malformed reference also gives null). */
  find(ref: string): ImageRecord | null {
    try {
      return this.store.get(ref);
    } catch (err) {
      if (isAppError(err) && err.code === "invalid_request") return null;
      throw err;
    }
  }

  /** Credentials for the reference's registry from the workspace secrets, if any. */
  credentialsFor(ref: string): RegistryCredentials | undefined {
    const parsed = parseReference(ref);
    if (parsed.kind !== "registry") return undefined;
    const name = registrySecretName(parsed.registry);
    const found = this.secrets.list({ kind: "workspace" }).some((s) => s.name === name);
    if (!found) return undefined;
    const value = this.secrets.value({ kind: "workspace" }, name, "the workspace");
    const colon = value.indexOf(":");
    if (colon <= 0) return undefined;
    return { username: value.slice(0, colon), password: value.slice(colon + 1) };
  }

  /** Pull (always re-resolving tags) with credentials from the secrets. */
  pull(ref: string, opts: PullOptions = {}): Promise<ImageRecord> {
    return this.store.pull(ref, { credentials: this.credentialsFor(ref), ...opts });
  }

  /** The pulled image for `ref`, pulling it first when it is not in the store. */
  async resolve(ref: string): Promise<ImageRecord> {
    return this.store.get(ref) ?? (await this.pull(ref));
  }

  /**
   * Which instances use an image (set by the daemon once instances exist):
   * an image an instance boots from cannot be removed, as with containers.
   */
  usersOf: (image: ImageRecord) => string[] = () => [];

  /** Forget an image; its files go at the next collection. Conflict while an instance uses it. */
  remove(ref: string): void {
    const image = this.require(ref);
    const users = this.usersOf(image);
    if (users.length > 0) {
      throw new Conflict(`image ${image.ref} is used by instance${users.length > 1 ? "s" : ""} ${users.join(", ")}`, "delete those instances first");
    }
    this.store.remove(image.ref);
  }

  /** Delete blobs and rootfs files that no image record or release uses. */
  collectGarbage() {
    return this.store.gc(new Set(this.digestsInUse()));
  }
}

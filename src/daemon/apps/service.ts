/**
 * @module daemon/apps/service
 * Apps: create, resolve by name or id, list, delete, and publish immutable
 * releases. A release pins the app's image to the digest resolved at publish
 * time; its rootfs is the image's cached ext4. The core guest binary is not
 * copied into it: every VM mounts it from the shared read-only tools disk, so
 * a release works with any base image.
 */
import { randomBytes } from "node:crypto";
import { Conflict, NotFound } from "../../api/errors.ts";
import { DEFAULT_NETWORK } from "../../api/network-policy.ts";
import type { App, AppCreate, Release } from "../../api/schema/apps.ts";
import type { ImagesService } from "../images/service.ts";
import type { AppsTable } from "../registry/apps.ts";

/** A new resource id: prefix, milliseconds since the epoch in hex, and random bits. */
export function newId(prefix: string): string {
  return `${prefix}-${Date.now().toString(16)}${randomBytes(4).toString("hex")}`;
}

/** App lifecycle and lookup. */
export class AppsService {
  constructor(
    private readonly table: AppsTable,
    private readonly images: ImagesService,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  /** Create an app; Conflict when the name is taken. */
  create(input: AppCreate): App {
    if (this.table.find(input.name)) {
      throw new Conflict(`app "${input.name}" already exists`, `pick another --name, or 'aegis app delete ${input.name}' first`);
    }
    // An empty command means the image's Entrypoint + Cmd (resolved when an instance is created).
    const app = { id: newId("app"), ...input, command: input.command ?? [], network: input.network ?? DEFAULT_NETWORK, created_at: this.clock().toISOString() };
    this.table.insert(app);
    return { ...app, releases: [] };
  }

  /** Resolve a name or id; NotFound otherwise. */
  get(ref: string): App {
    const app = this.table.find(ref);
    if (!app) throw new NotFound(`app "${ref}" not found`, "list apps with 'aegis app list'");
    return app;
  }

  /** Every app. */
  list(): App[] {
    return this.table.list();
  }

  /** Resolve the app's image to a digest (pulling it), build its rootfs, and record a release. */
  async publish(ref: string, label: string | undefined): Promise<Release> {
    const app = this.get(ref);
    if (label !== undefined && app.releases.some((r) => r.label === label)) {
      throw new Conflict(`app "${app.name}" already has a release labelled "${label}"`, "labels name one release each; pick another --label");
    }
    const image = await this.images.pull(app.image);
    if (label !== undefined && this.table.releases(app.id).some((r) => r.label === label)) {
      throw new Conflict(`app "${app.name}" already has a release labelled "${label}"`, "labels name one release each; pick another --label");
    }
    const release: Release = { id: newId("rel"), app_id: app.id, label: label ?? null, image_digest: image.digest, created_at: this.clock().toISOString() };
    this.table.insertRelease(release);
    return release;
  }

  /** Delete an app with its releases and secrets. */
  delete(ref: string): App {
    const app = this.get(ref);
    this.table.delete(app.id);
    return app;
  }
}

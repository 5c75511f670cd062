/**
 * @module daemon/registry/apps
 * Rows of `apps` and `releases`.
 */
import type { Database } from "bun:sqlite";
import type { App, Release } from "../../api/schema/apps.ts";
import { DEFAULT_NETWORK, type NetworkPolicy } from "../../api/network-policy.ts";

type AppRow = { id: string; name: string; image: string; command: string; expose: string; network: string | null; created_at: string };

/** Table access for apps and their releases. */
export class AppsTable {
  constructor(private readonly db: Database) {}

  /** Insert a new app (the caller checked the name is free). */
  insert(app: Omit<App, "releases">): void {
    this.db
      .query(`INSERT INTO apps (id, name, image, command, expose, network, created_at) VALUES ($id, $name, $image, $command, $expose, $network, $created_at)`)
      .run({ ...app, command: JSON.stringify(app.command), expose: JSON.stringify(app.expose), network: JSON.stringify(app.network) });
  }

  /** Look an app up by id or by name. */
  find(ref: string): App | null {
    const row = this.db.query(`SELECT * FROM apps WHERE id = $ref OR name = $ref`).get({ ref }) as AppRow | null;
    return row ? this.hydrate(row) : null;
  }

  /** All apps by name. */
  list(): App[] {
    return (this.db.query(`SELECT * FROM apps ORDER BY name`).all() as AppRow[]).map((r) => this.hydrate(r));
  }

  /** Delete an app; its secrets and releases go with it (ON DELETE CASCADE). */
  delete(id: string): void {
    this.db.query(`DELETE FROM apps WHERE id = $id`).run({ id });
  }

  /** Record a release; `seq` orders releases even within one millisecond. */
  insertRelease(release: Release): void {
    this.db
      .query(
        `INSERT INTO releases (id, app_id, label, image_digest, created_at, seq)
         VALUES ($id, $app_id, $label, $image_digest, $created_at, (SELECT COALESCE(MAX(seq), 0) + 1 FROM releases WHERE app_id = $app_id))`,
      )
      .run(release);
  }

  /** An app's releases, newest first. */
  releases(appId: string): Release[] {
    return this.db
      .query(`SELECT id, app_id, label, image_digest, created_at FROM releases WHERE app_id = $app_id ORDER BY seq DESC`)
      .all({ app_id: appId }) as Release[];
  }

  /** Image digests referenced by any release (kept by image garbage collection). */
  releaseDigests(): string[] {
    return (this.db.query(`SELECT DISTINCT image_digest FROM releases WHERE image_digest IS NOT NULL`).all() as { image_digest: string }[]).map(
      (r) => r.image_digest,
    );
  }

  private hydrate(row: AppRow): App {
    return {
      ...row,
      command: JSON.parse(row.command) as string[],
      expose: JSON.parse(row.expose) as number[],
      network: row.network === null ? DEFAULT_NETWORK : (JSON.parse(row.network) as NetworkPolicy),
      releases: this.releases(row.id),
    };
  }
}

/**
 * @module daemon/registry/secrets
 * Rows of `workspace_secrets` and `app_secrets`. Values are stored sealed;
 * this module never sees plaintext.
 */
import type { Database } from "bun:sqlite";
import type { Sealed } from "../secrets/cipher.ts";

/** A stored secret row. */
export interface SecretRow extends Sealed {
  name: string;
  /** JSON of the secret's SecretEgress (api/egress-secrets.ts). */
  egress: string;
  /** Random id of its placeholder `AEGIS_SECRET_<id>` (never derived from the value). */
  placeholder: string;
  created_at: string;
  updated_at: string;
}

/** Where a secret lives: the workspace, or one app (by id). */
export type SecretScope = { kind: "workspace" } | { kind: "app"; appId: string };

/** Table access for both secret scopes. */
export class SecretsTable {
  constructor(private readonly db: Database) {}

  private where(scope: SecretScope): { table: string; cond: string; params: Record<string, string> } {
    return scope.kind === "workspace"
      ? { table: "workspace_secrets", cond: "1 = 1", params: {} }
      : { table: "app_secrets", cond: "app_id = $app_id", params: { app_id: scope.appId } };
  }

  /** Insert or replace a sealed value and its binding; keeps the original creation time and placeholder. */
  upsert(scope: SecretScope, name: string, sealed: Sealed, egress: string, placeholder: string, now: string): void {
    if (scope.kind === "workspace") {
      this.db
        .query(
          `INSERT INTO workspace_secrets (name, nonce, ciphertext, egress, placeholder, created_at, updated_at) VALUES ($name, $nonce, $ciphertext, $egress, $placeholder, $now, $now)
           ON CONFLICT(name) DO UPDATE SET nonce = excluded.nonce, ciphertext = excluded.ciphertext, egress = excluded.egress, updated_at = excluded.updated_at`,
        )
        .run({ name, nonce: sealed.nonce, ciphertext: sealed.ciphertext, egress, placeholder, now });
    } else {
      this.db
        .query(
          `INSERT INTO app_secrets (app_id, name, nonce, ciphertext, egress, placeholder, created_at, updated_at) VALUES ($app_id, $name, $nonce, $ciphertext, $egress, $placeholder, $now, $now)
           ON CONFLICT(app_id, name) DO UPDATE SET nonce = excluded.nonce, ciphertext = excluded.ciphertext, egress = excluded.egress, updated_at = excluded.updated_at`,
        )
        .run({ app_id: scope.appId, name, nonce: sealed.nonce, ciphertext: sealed.ciphertext, egress, placeholder, now });
    }
  }

  /** One row, or null. */
  get(scope: SecretScope, name: string): SecretRow | null {
    const w = this.where(scope);
    return this.db
      .query(`SELECT name, nonce, ciphertext, egress, placeholder, created_at, updated_at FROM ${w.table} WHERE ${w.cond} AND name = $name`)
      .get({ ...w.params, name }) as SecretRow | null;
  }

  /** All rows of a scope, by name. */
  list(scope: SecretScope): SecretRow[] {
    const w = this.where(scope);
    return this.db
      .query(`SELECT name, nonce, ciphertext, egress, placeholder, created_at, updated_at FROM ${w.table} WHERE ${w.cond} ORDER BY name`)
      .all(w.params) as SecretRow[];
  }

  /** Delete one; returns whether it existed. */
  delete(scope: SecretScope, name: string): boolean {
    const w = this.where(scope);
    return this.db.query(`DELETE FROM ${w.table} WHERE ${w.cond} AND name = $name`).run({ ...w.params, name }).changes > 0;
  }
}

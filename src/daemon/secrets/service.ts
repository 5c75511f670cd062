/**
 * @module daemon/secrets/service
 * Workspace- and app-scoped secrets. Values are sealed before they reach the
 * registry and are only ever returned by {@link SecretsService.value} (the
 * socket-only `GET /v1/secrets/{key}`) and {@link SecretsService.resolve}
 * (injection into a guest over the control channel). An app secret overrides
 * a workspace secret of the same name.
 */
import { NotFound } from "../../api/errors.ts";
import type { SecretScope, SecretsTable } from "../registry/secrets.ts";
import type { SecretCipher } from "./cipher.ts";

/** Public information about a secret (never its value). */
export interface SecretInfo {
  name: string;
  created_at: string;
  updated_at: string;
}

function scopeKey(scope: SecretScope): string {
  return scope.kind === "workspace" ? "workspace" : `app:${scope.appId}`;
}

/** Secret storage and lookup. */
export class SecretsService {
  constructor(
    private readonly table: SecretsTable,
    private readonly cipher: SecretCipher,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  /** Create or replace a secret. */
  set(scope: SecretScope, name: string, value: string): void {
    this.table.upsert(scope, name, this.cipher.seal(scopeKey(scope), name, value), this.clock().toISOString());
  }

  /** Names and timestamps of a scope's secrets. */
  list(scope: SecretScope): SecretInfo[] {
    return this.table.list(scope).map(({ name, created_at, updated_at }) => ({ name, created_at, updated_at }));
  }

  /** Delete a secret; NotFound when it does not exist. */
  delete(scope: SecretScope, name: string, scopeLabel: string): void {
    if (!this.table.delete(scope, name)) {
      throw new NotFound(`secret ${name} not found in ${scopeLabel}`, `list them with 'aegis secret list${scope.kind === "app" ? " APP" : ""}'`);
    }
  }

  /** Decrypted value of one secret; NotFound when it does not exist. */
  value(scope: SecretScope, name: string, scopeLabel: string): string {
    const row = this.table.get(scope, name);
    if (!row) throw new NotFound(`secret ${name} not found in ${scopeLabel}`, `set it with 'aegis secret set ${name} VALUE'`);
    return this.cipher.open(scopeKey(scope), name, row);
  }

  /**
   * The values to inject into a guest: `names` (or every secret for `"*"`),
   * app secrets overriding workspace ones. A named secret that exists in
   * neither scope is a NotFound error, so a typo never starts a VM without it.
   */
  resolve(names: string[] | "*", appId?: string): Record<string, string> {
    const scopes: SecretScope[] = [{ kind: "workspace" }, ...(appId ? [{ kind: "app", appId } as const] : [])];
    const out: Record<string, string> = {};
    for (const scope of scopes) {
      for (const row of this.table.list(scope)) {
        if (names === "*" || names.includes(row.name)) out[row.name] = this.cipher.open(scopeKey(scope), row.name, row);
      }
    }
    if (names !== "*") {
      const missing = names.filter((n) => !(n in out));
      if (missing.length > 0) {
        throw new NotFound(`secret ${missing.join(", ")} not found`, `set it with 'aegis secret set ${missing[0]} VALUE' or drop --secret ${missing[0]}`);
      }
    }
    return out;
  }
}

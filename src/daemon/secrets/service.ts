/**
 * @module daemon/secrets/service
 * Workspace- and app-scoped secrets. Values are sealed before they reach the
 * registry and are only ever returned by {@link SecretsService.value} (the
 * socket-only `GET /v1/secrets/{key}`) and {@link SecretsService.resolve}
 * (injection into a guest over the control channel). An app secret overrides
 * a workspace secret of the same name.
 *
 * Secrets kept out of the guest (api/egress-secrets.ts): {@link SecretsService.plan}
 * splits what a VM is granted into raw values (in its environment) and
 * substitutions (the guest sees `AEGIS_SECRET_<id>`; the host's egress proxy
 * puts the value into request headers for the bound hosts only).
 */
import { NotFound } from "../../api/errors.ts";
import { newPlaceholderId, placeholderFor, type SecretEgress, secretHosts, type Substitution } from "../../api/egress-secrets.ts";
import type { SecretRow, SecretScope, SecretsTable } from "../registry/secrets.ts";
import type { SecretCipher } from "./cipher.ts";

/** Public information about a secret (never its value). */
export interface SecretInfo {
  name: string;
  /** How it reaches a guest (never its value). */
  egress: SecretEgress;
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

  /** Create or replace a secret (its binding too: `auto` unless given; the placeholder id stays the one made first). */
  set(scope: SecretScope, name: string, value: string, egress: SecretEgress = { mode: "auto" }): void {
    this.table.upsert(scope, name, this.cipher.seal(scopeKey(scope), name, value), JSON.stringify(egress), newPlaceholderId(), this.clock().toISOString());
  }

  /** Names, bindings and timestamps of a scope's secrets. */
  list(scope: SecretScope): SecretInfo[] {
    return this.table.list(scope).map(({ name, egress, created_at, updated_at }) => ({ name, egress: JSON.parse(egress) as SecretEgress, created_at, updated_at }));
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
    const out: Record<string, string> = {};
    for (const [name, { value }] of this.granted(names, appId)) out[name] = value;
    return out;
  }

  /**
   * What a VM granted `names` gets, given its environment `env` (which names
   * a provider's base URL): `env` holds every granted secret, raw values and
   * placeholders; `substitutions` are the secrets kept out of the guest;
   * `raw` names those whose value is in the guest. Same NotFound as
   * {@link resolve}.
   */
  plan(names: string[] | "*", appId: string | undefined, env: Record<string, string>): { env: Record<string, string>; substitutions: Substitution[]; raw: string[] } {
    const out = { env: {} as Record<string, string>, substitutions: [] as Substitution[], raw: [] as string[] };
    if (names !== "*" && names.length === 0) return out;
    for (const [name, { value, row }] of this.granted(names, appId)) {
      const hosts = secretHosts(name, JSON.parse(row.egress) as SecretEgress, env);
      if (!hosts) {
        out.env[name] = value;
        out.raw.push(name);
        continue;
      }
      const placeholder = placeholderFor(row.placeholder);
      out.env[name] = placeholder;
      out.substitutions.push({ name, placeholder, value, hosts });
    }
    return out;
  }

  private granted(names: string[] | "*", appId?: string): Map<string, { value: string; row: SecretRow }> {
    const scopes: SecretScope[] = [{ kind: "workspace" }, ...(appId ? [{ kind: "app", appId } as const] : [])];
    const out = new Map<string, { value: string; row: SecretRow }>();
    for (const scope of scopes) {
      for (const row of this.table.list(scope)) {
        if (names === "*" || names.includes(row.name)) out.set(row.name, { value: this.cipher.open(scopeKey(scope), row.name, row), row });
      }
    }
    if (names !== "*") {
      const missing = names.filter((n) => !out.has(n));
      if (missing.length > 0) {
        throw new NotFound(`secret ${missing.join(", ")} not found`, `set it with 'aegis secret set ${missing[0]} VALUE' or drop --secret ${missing[0]}`);
      }
    }
    return out;
  }
}

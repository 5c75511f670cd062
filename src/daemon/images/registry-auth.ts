/**
 * @module daemon/images/registry-auth
 * Registry authentication: the `WWW-Authenticate` challenge, the anonymous or
 * credentialed bearer-token flow of the distribution token spec, and Basic
 * auth when a registry asks for it. Tokens are cached per scope.
 */
import { readBounded, readErrorText } from "./bounded-read.ts";
import { RegistryError } from "./errors.ts";
import { MAX_ERROR_BODY_BYTES, MAX_TOKEN_BODY_BYTES } from "./limits.ts";
import { transportFor } from "./transport.ts";

/** Registry credentials supplied by the caller (e.g. from a secret). */
export interface Credentials {
  username: string;
  password: string;
}

/** A parsed authentication challenge. */
export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parse `Bearer realm="...",service="...",scope="..."`; quoted values may hold commas. */
export function parseChallenge(header: string): Challenge {
  const m = /^\s*(\w+)\s*(.*)$/.exec(header);
  if (!m) throw new RegistryError(`unparseable WWW-Authenticate header: ${JSON.stringify(header)}`);
  const params: Record<string, string> = {};
  const re = /([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?\s*/g;
  for (const p of m[2]!.matchAll(re)) params[p[1]!.toLowerCase()] = (p[2] ?? p[3] ?? "").replace(/\\(.)/g, "$1");
  return { scheme: m[1]!.toLowerCase(), params };
}

function basic(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString("base64")}`;
}

/** Per-registry auth state: answers challenges and supplies the Authorization header. */
export class RegistryAuth {
  private authorization: string | undefined;
  private readonly tokens = new Map<string, string>();

  constructor(
    private readonly registry: string,
    private readonly credentials?: Credentials,
  ) {}

  /** The Authorization header to send, if any. */
  header(): string | undefined {
    return this.authorization;
  }

  /** Handle a 401: fetch a token for `scope` (or switch to Basic). Throws when it cannot. */
  async answer(res: Response, scope: string): Promise<void> {
    const header = res.headers.get("www-authenticate");
    if (!header) throw new RegistryError(`registry ${this.registry} answered 401 without a WWW-Authenticate challenge`);
    const ch = parseChallenge(header);
    if (ch.scheme === "basic") {
      if (!this.credentials) throw new RegistryError(`registry ${this.registry} requires a username and password`, "pass credentials for this registry");
      this.authorization = basic(this.credentials);
      return;
    }
    if (ch.scheme !== "bearer") throw new RegistryError(`registry ${this.registry} asks for unsupported auth scheme "${ch.scheme}"`);
    const wanted = ch.params.scope ?? scope;
    const cached = this.tokens.get(wanted);
    if (cached && `Bearer ${cached}` !== this.authorization) {
      this.authorization = `Bearer ${cached}`;
      return;
    }
    this.authorization = `Bearer ${await this.fetchToken(ch.params, wanted)}`;
    this.tokens.set(wanted, this.authorization.slice(7));
  }

  private async fetchToken(params: Record<string, string>, scope: string): Promise<string> {
    const realm = params.realm;
    if (!realm) throw new RegistryError(`registry ${this.registry} sent a Bearer challenge without a realm`);
    let url: URL;
    try {
      url = new URL(realm);
    } catch (err) {
      throw new RegistryError(`registry ${this.registry} sent a bad token realm ${JSON.stringify(realm)}: ${(err as Error).message}`);
    }
    if (url.protocol === "http:" && transportFor(url.host) !== "http") {
      throw new RegistryError(`token realm ${realm} of registry ${this.registry} is plain HTTP`, "only loopback hosts or hosts in AEGIS_INSECURE_REGISTRIES may use plain HTTP");
    }
    if (params.service) url.searchParams.set("service", params.service);
    if (scope) url.searchParams.set("scope", scope);
    const headers: Record<string, string> = {};
    if (this.credentials) headers.authorization = basic(this.credentials);
    let res: Response;
    try {
      res = await fetch(url, { headers });
    } catch (err) {
      throw new RegistryError(`cannot reach token server ${url.origin} for registry ${this.registry}: ${(err as Error).message}`);
    }
    if (!res.ok) {
      const body = (await readErrorText(res, MAX_ERROR_BODY_BYTES)).slice(0, 200);
      const hint = res.status === 401 || res.status === 403 ? "check the registry credentials" : undefined;
      throw new RegistryError(`token server ${url.origin} refused a token for ${scope}: HTTP ${res.status} ${body}`, hint);
    }
    const raw = await readBounded(res, MAX_TOKEN_BODY_BYTES, `token from ${url.origin} for registry ${this.registry}`);
    let json: { token?: string; access_token?: string };
    try {
      json = JSON.parse(new TextDecoder().decode(raw));
    } catch (err) {
      throw new RegistryError(`token server ${url.origin} answered with invalid JSON: ${(err as Error).message}`);
    }
    if (typeof json !== "object" || json === null) throw new RegistryError(`token server ${url.origin} answered without a token`);
    const token = json.token ?? json.access_token;
    if (typeof token !== "string" || token === "") throw new RegistryError(`token server ${url.origin} answered without a token`);
    return token;
  }
}

/**
 * @module daemon/e2b/auth
 * The E2B front's credentials. The API key (`e2b_` and 40 hex digits, the
 * form the newest SDKs check) is generated once per AEGIS_HOME and kept
 * sealed with the master key (AES-256-GCM, like secrets) in
 * `data/e2b-api-key.sealed`; every REST call must send it as `X-API-KEY`.
 * Each sandbox gets its own envd access token (sealed in its spec), which
 * every envd call must send as `X-Access-Token`. Comparisons are constant
 * time.
 */
import { randomBytes, timingSafeEqual } from "node:crypto";
import { closeSync, openSync, readFileSync, writeSync } from "node:fs";
import type { SecretCipher } from "../secrets/cipher.ts";

const SCOPE = "e2b";

/** A sealed value as stored (base64 parts). */
export interface SealedText {
  nonce: string;
  ciphertext: string;
}

/** Seal a credential under `name`. */
export function sealText(cipher: SecretCipher, name: string, value: string): SealedText {
  const s = cipher.seal(SCOPE, name, value);
  return { nonce: Buffer.from(s.nonce).toString("base64"), ciphertext: Buffer.from(s.ciphertext).toString("base64") };
}

/** Open a credential sealed under `name`. */
export function openText(cipher: SecretCipher, name: string, sealed: SealedText): string {
  return cipher.open(SCOPE, name, { nonce: Buffer.from(sealed.nonce, "base64"), ciphertext: Buffer.from(sealed.ciphertext, "base64") });
}

/** Constant-time equality of two strings (false for different lengths). */
export function sameSecret(given: string | null | undefined, expected: string): boolean {
  if (!given) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** A new envd access token for a sandbox. */
export function newAccessToken(): string {
  return randomBytes(24).toString("hex");
}

/** Load the API key from `path`, creating it (0600, exclusive create) on first use. */
export function loadOrCreateApiKey(cipher: SecretCipher, path: string): string {
  try {
    const fd = openSync(path, "wx", 0o600);
    try {
      writeSync(fd, JSON.stringify(sealText(cipher, "api-key", `e2b_${randomBytes(20).toString("hex")}`)));
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
  const sealed = JSON.parse(readFileSync(path, "utf8")) as SealedText;
  return openText(cipher, "api-key", sealed);
}

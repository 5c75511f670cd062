/**
 * @module daemon/ui/token
 * The web UI's access token: 32 random bytes per AEGIS_HOME, stored 0600 in
 * `data/ui.token` so every `aegis ui` of that home opens the same session
 * (and a second browser tab keeps working) while another user or another
 * home's UI cannot guess it. The CSRF value the pages carry is derived from
 * it (HMAC), so script-readable page content never holds the token itself.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { chmodSync, readFileSync, writeFileSync } from "node:fs";

/** The token in `path`, creating it (0600) when absent. A malformed file is an error, never silently replaced. */
export function loadOrCreateUiToken(path: string): string {
  try {
    const token = readFileSync(path, "utf8").trim();
    if (!/^[0-9a-f]{64}$/.test(token)) throw new Error(`${path} is not a UI token (64 hex characters); delete it to have a new one made`);
    return token;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  const token = randomBytes(32).toString("hex");
  // `wx`: two daemons racing on one home must not overwrite each other's token.
  writeFileSync(path, `${token}\n`, { mode: 0o600, flag: "wx" });
  chmodSync(path, 0o600);
  return token;
}

/** The CSRF value derived from the token: what pages send back in `X-Aegis-CSRF`. */
export function csrfFor(token: string): string {
  return createHmac("sha256", token).update("aegis-ui-csrf").digest("hex");
}

/** Constant-time comparison of two secrets (false on any length mismatch). */
export function sameSecret(a: string | undefined | null, b: string): boolean {
  if (typeof a !== "string") return false;
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

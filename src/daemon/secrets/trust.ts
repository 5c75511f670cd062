/**
 * @module daemon/secrets/trust
 * Putting the AEGIS_HOME egress CA (vmm/network/egress-ca.ts) into a
 * guest's trust store, so its TLS clients accept the egress proxy's
 * certificates for the hosts its secrets are bound to. Only the
 * certificate: the CA key never leaves the host.
 *
 * Done through the guest's own `fs.*` requests (the contract in
 * api/schema/files.ts; no guest code of its own), after boot and before the
 * first process: every bundle of {@link GUEST_BUNDLE_PATHS} the rootfs has
 * gets the CA appended, the first is created (with the CA alone) when none
 * exists, and {@link GUEST_CA_PATH} holds the CA by itself. Writes land in
 * the VM's writable layer (the image is never modified) and are idempotent
 * (a bundle already holding the CA is left alone: the overlay persists
 * across boots). The processes get {@link trustEnv} (SSL_CERT_FILE,
 * NODE_EXTRA_CA_CERTS, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE) unless their own
 * env sets those. Bundles over 8 MiB (a hostile or odd guest) are skipped.
 */
import { GUEST_BUNDLE_PATHS, GUEST_CA_PATH, trustEnv } from "../../api/egress-secrets.ts";
import { RpcError } from "../../api/jsonrpc.ts";
import { RpcErrorCode } from "../../api/schema/control.ts";
import { FS_CHUNK_BYTES } from "../../api/schema/files.ts";
import type { ControlChannel } from "../../vmm/control-channel.ts";

const MAX_BUNDLE = 8 * 1024 * 1024;
const TIMEOUT = { timeoutMs: 15_000 };

/** The bundle SSL_CERT_FILE names (the injection makes sure it exists). */
export const TRUST_BUNDLE = GUEST_BUNDLE_PATHS[0];

/** The trust variables for a process env, without overriding what `env` sets itself. */
export function withTrustEnv(env: Record<string, string>): Record<string, string> {
  return { ...trustEnv(TRUST_BUNDLE), ...env };
}

function missing(err: unknown): boolean {
  const errno = err instanceof RpcError && err.code === RpcErrorCode.fsError ? (err.data as { errno?: string } | undefined)?.errno : undefined;
  return errno === "ENOENT" || errno === "ENOTDIR";
}

async function readGuest(ch: ControlChannel, path: string): Promise<string | undefined> {
  const st = await ch.call("fs.stat", { path }, TIMEOUT).catch((err: unknown) => {
    if (missing(err)) return undefined;
    throw err;
  });
  if (!st) return undefined;
  if (st.size > MAX_BUNDLE) return undefined;
  const parts: Buffer[] = [];
  for (let offset = 0; ; ) {
    const r = await ch.call("fs.read", { path, offset, length: FS_CHUNK_BYTES }, TIMEOUT);
    const b = Buffer.from(r.data, "base64");
    parts.push(b);
    offset += b.length;
    if (r.eof || b.length === 0 || offset > MAX_BUNDLE) break;
  }
  return Buffer.concat(parts).toString("utf8");
}

async function writeGuest(ch: ControlChannel, path: string, text: string): Promise<void> {
  // fs.write and fs.mkdir resolve the parents inside the rootfs, so they must exist: make them one level at a time
  // (a busybox image has no /etc/ssl).
  const parts = path.split("/").slice(1, -1);
  for (let i = 1; i <= parts.length; i++) await ch.call("fs.mkdir", { path: `/${parts.slice(0, i).join("/")}`, mode: 0o755 }, TIMEOUT);
  const data = Buffer.from(text);
  for (let offset = 0; offset === 0 || offset < data.length; offset += FS_CHUNK_BYTES) {
    await ch.call("fs.write", { path, offset, data: data.subarray(offset, offset + FS_CHUNK_BYTES).toString("base64"), mode: 0o644 }, TIMEOUT);
  }
}

/** Install `caPem` in the guest behind `ch` (see the module notes). */
export async function injectTrust(ch: ControlChannel, caPem: string): Promise<void> {
  const pem = caPem.endsWith("\n") ? caPem : `${caPem}\n`;
  await writeGuest(ch, GUEST_CA_PATH, pem);
  let any = false;
  for (const path of GUEST_BUNDLE_PATHS) {
    const text = await readGuest(ch, path);
    if (text === undefined) continue;
    any = true;
    if (text.includes(pem.trim())) continue;
    await writeGuest(ch, path, `${text}${text === "" || text.endsWith("\n") ? "" : "\n"}${pem}`);
  }
  if (!any) await writeGuest(ch, TRUST_BUNDLE, pem);
}

/**
 * @module vmm/network/egress-ca
 * The Aegis egress CA of one AEGIS_HOME: a self-signed RSA-2048 CA made once
 * (`data/egress-ca.pem`, and its key `data/egress-ca.key`, mode 0600, which
 * never leaves the host: guests get only the certificate), and the leaf
 * certificates it issues for the hosts secrets are bound to, one per TLS
 * server name, so the egress proxy (egress-proxy.ts) can terminate the
 * guest's TLS and put the secret into the request.
 *
 * node:crypto cannot create certificates, so node-forge builds and signs
 * them; keys come from node:crypto (native, fast). Leaves share one key made
 * per process (as mitmproxy does: the key protects nothing the CA key does
 * not), are valid for 7 days from an hour ago (clock skew in a restored
 * guest), and are cached per name (at most 256).
 */
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { createSecureContext, type SecureContext } from "node:tls";
import forge from "node-forge";

const LEAF_DAYS = 7;
const MAX_LEAVES = 256;

function rsaPair(): { publicKey: string; privateKey: string } {
  return generateKeyPairSync("rsa", { modulusLength: 2048, publicKeyEncoding: { type: "spki", format: "pem" }, privateKeyEncoding: { type: "pkcs8", format: "pem" } });
}

function serial(): string {
  // Positive 128-bit serial (the leading 0 nibble keeps it positive in DER).
  return `0${randomBytes(16).toString("hex").slice(1)}`;
}

/** Write `data` to `path` atomically with `mode`. */
function writeAtomic(path: string, data: string, mode: number): void {
  const tmp = `${path}.${randomBytes(4).toString("hex")}.tmp`;
  writeFileSync(tmp, data, { mode, flag: "wx" });
  renameSync(tmp, path);
}

/** The CA of one AEGIS_HOME. */
export class EgressCa {
  private readonly leaves = new Map<string, SecureContext>();
  private leafKey?: { publicKey: string; privateKey: string };

  private constructor(
    /** The CA certificate (PEM): what guests trust. */
    readonly certPem: string,
    private readonly cert: forge.pki.Certificate,
    private readonly key: forge.pki.rsa.PrivateKey,
  ) {}

  /** Paths of the CA of `home`. */
  static paths(home: string): { cert: string; key: string } {
    return { cert: join(home, "data", "egress-ca.pem"), key: join(home, "data", "egress-ca.key") };
  }

  /** Load the CA of `home`, creating it on first use. */
  static loadOrCreate(home: string): EgressCa {
    const p = EgressCa.paths(home);
    if (!existsSync(p.key) || !existsSync(p.cert)) EgressCa.create(p);
    chmodSync(p.key, 0o600);
    const certPem = readFileSync(p.cert, "utf8");
    let cert: forge.pki.Certificate;
    let key: forge.pki.rsa.PrivateKey;
    try {
      cert = forge.pki.certificateFromPem(certPem);
      key = forge.pki.privateKeyFromPem(readFileSync(p.key, "utf8")) as forge.pki.rsa.PrivateKey;
    } catch (err) {
      throw new Error(`the egress CA in ${dirname(p.cert)} is unreadable (${String(err)})\nhint: remove ${p.cert} and ${p.key}; aegisd makes a new one (guests booted with the old one must restart)`);
    }
    return new EgressCa(certPem, cert, key);
  }

  private static create(p: { cert: string; key: string }): void {
    mkdirSync(dirname(p.key), { recursive: true, mode: 0o700 });
    const pair = rsaPair();
    const cert = forge.pki.createCertificate();
    cert.publicKey = forge.pki.publicKeyFromPem(pair.publicKey);
    cert.serialNumber = serial();
    cert.validity.notBefore = new Date(Date.now() - 3600_000);
    cert.validity.notAfter = new Date(Date.now() + 10 * 365 * 86400_000);
    const name = [
      { name: "commonName", value: `Aegis egress CA ${randomBytes(4).toString("hex")}` },
      { name: "organizationName", value: "Aegis (local, per AEGIS_HOME)" },
    ];
    cert.setSubject(name);
    cert.setIssuer(name);
    cert.setExtensions([
      { name: "basicConstraints", cA: true, pathLenConstraint: 0, critical: true },
      { name: "keyUsage", keyCertSign: true, cRLSign: true, critical: true },
      { name: "subjectKeyIdentifier" },
    ]);
    cert.sign(forge.pki.privateKeyFromPem(pair.privateKey) as forge.pki.rsa.PrivateKey, forge.md.sha256.create());
    // Key first: a cert without its key is never left behind as if usable.
    writeAtomic(p.key, pair.privateKey, 0o600);
    writeAtomic(p.cert, forge.pki.certificateToPem(cert), 0o644);
  }

  /** A new leaf for `name` (PEM chain: leaf then CA, and the shared leaf key). */
  issue(name: string): { cert: string; key: string } {
    this.leafKey ??= rsaPair();
    const cert = forge.pki.createCertificate();
    cert.publicKey = forge.pki.publicKeyFromPem(this.leafKey.publicKey);
    cert.serialNumber = serial();
    cert.validity.notBefore = new Date(Date.now() - 3600_000);
    cert.validity.notAfter = new Date(Date.now() + LEAF_DAYS * 86400_000);
    cert.setSubject([{ name: "commonName", value: name }]);
    cert.setIssuer(this.cert.subject.attributes);
    cert.setExtensions([
      { name: "basicConstraints", cA: false },
      { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
      { name: "extKeyUsage", serverAuth: true },
      { name: "subjectAltName", altNames: [{ type: 2, value: name }] },
      { name: "authorityKeyIdentifier", keyIdentifier: this.cert.generateSubjectKeyIdentifier().getBytes() },
    ]);
    cert.sign(this.key, forge.md.sha256.create());
    return { cert: `${forge.pki.certificateToPem(cert)}${this.certPem}`, key: this.leafKey.privateKey };
  }

  /** A TLS context serving a certificate for `name` issued by this CA (cached). */
  contextFor(name: string): SecureContext {
    const hit = this.leaves.get(name);
    if (hit) return hit;
    const leaf = this.issue(name);
    const ctx = createSecureContext({ cert: leaf.cert, key: leaf.key });
    if (this.leaves.size >= MAX_LEAVES) this.leaves.delete(this.leaves.keys().next().value!);
    this.leaves.set(name, ctx);
    return ctx;
  }
}

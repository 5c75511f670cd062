/**
 * @module daemon/secrets/cipher
 * Encryption at rest for secret values: AES-256-GCM with a fresh random 96-bit
 * nonce per value and a 256-bit key kept in `data/master.key` (mode 0600).
 * The scope and name are bound in as additional authenticated data, so a
 * ciphertext copied onto another secret's row fails to decrypt.
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { chmodSync, closeSync, openSync, readFileSync, statSync, writeSync } from "node:fs";

const KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

/** Encrypted form of one value. `ciphertext` ends with the 16-byte GCM tag. */
export interface Sealed {
  nonce: Uint8Array;
  ciphertext: Uint8Array;
}

/** Load the master key, creating it (0600, exclusive create) on first use. */
export function loadOrCreateMasterKey(path: string): Buffer {
  try {
    const fd = openSync(path, "wx", 0o600);
    try {
      writeSync(fd, randomBytes(KEY_BYTES));
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
  const mode = statSync(path).mode & 0o777;
  if (mode !== 0o600) chmodSync(path, 0o600);
  const key = readFileSync(path);
  if (key.length !== KEY_BYTES) {
    throw new Error(`master key ${path} is ${key.length} bytes, expected ${KEY_BYTES}; it is corrupt (restore it from a backup)`);
  }
  return key;
}

/** AES-256-GCM sealer bound to one master key. */
export class SecretCipher {
  constructor(private readonly key: Buffer) {}

  /** Encrypt `value` for the secret `scope`/`name`. */
  seal(scope: string, name: string, value: string): Sealed {
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv("aes-256-gcm", this.key, nonce);
    cipher.setAAD(Buffer.from(`${scope}\0${name}`));
    // Stryker disable next-line StringLiteral: equivalent (an empty encoding falls back to utf8, the default)
    const body = Buffer.concat([cipher.update(value, "utf8"), cipher.final()]);
    return { nonce, ciphertext: Buffer.concat([body, cipher.getAuthTag()]) };
  }

  /** Decrypt a value sealed for `scope`/`name`; throws if the key, scope or name do not match. */
  open(scope: string, name: string, sealed: Sealed): string {
    const data = Buffer.from(sealed.ciphertext);
    const decipher = createDecipheriv("aes-256-gcm", this.key, Buffer.from(sealed.nonce));
    decipher.setAAD(Buffer.from(`${scope}\0${name}`));
    decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
    return Buffer.concat([decipher.update(data.subarray(0, data.length - TAG_BYTES)), decipher.final()]).toString("utf8");
  }
}

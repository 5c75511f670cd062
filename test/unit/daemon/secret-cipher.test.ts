/**
 * Sealing secret values at rest, as an attacker with the database (and not
 * the master key) would probe it: ciphertexts moved between secrets or
 * scopes, tampered bytes, another key. And the master key file itself.
 */
import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadOrCreateMasterKey, SecretCipher } from "../../../src/daemon/secrets/cipher.ts";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "aegis-cipher-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const key = Buffer.alloc(32, 7);

describe("SecretCipher", () => {
  it("round-trips text, including an empty value and non-ASCII", () => {
    const c = new SecretCipher(key);
    for (const v of ["v", "", "sk-ünïcødé-🔑", "x".repeat(10_000)]) expect(c.open("workspace", "K", c.seal("workspace", "K", v))).toBe(v);
  });
  it("uses a fresh 96-bit nonce per value and never shows the plaintext", () => {
    const c = new SecretCipher(key);
    const a = c.seal("workspace", "K", "sk-plaintext-canary");
    const b = c.seal("workspace", "K", "sk-plaintext-canary");
    expect(a.nonce.length).toBe(12);
    expect(Buffer.from(a.nonce).equals(Buffer.from(b.nonce))).toBe(false);
    expect(Buffer.from(a.ciphertext).equals(Buffer.from(b.ciphertext))).toBe(false);
    expect(Buffer.from(a.ciphertext).includes(Buffer.from("sk-plaintext-canary"))).toBe(false);
    // The stored form is the value's bytes plus the 16-byte tag, nothing else.
    expect(a.ciphertext.length).toBe(Buffer.byteLength("sk-plaintext-canary") + 16);
  });
  it("refuses a ciphertext moved to another secret's name", () => {
    const c = new SecretCipher(key);
    const sealed = c.seal("workspace", "A", "value");
    expect(() => c.open("workspace", "B", sealed)).toThrow();
  });
  it("refuses an app secret's ciphertext opened as the workspace secret of the same name, and vice versa", () => {
    const c = new SecretCipher(key);
    const app = c.seal("app:app-1", "TOKEN", "app-only");
    const ws = c.seal("workspace", "TOKEN", "ws");
    expect(() => c.open("workspace", "TOKEN", app)).toThrow();
    expect(() => c.open("app:app-1", "TOKEN", ws)).toThrow();
    expect(() => c.open("app:app-2", "TOKEN", app)).toThrow();
    expect(c.open("app:app-1", "TOKEN", app)).toBe("app-only");
  });
  it("does not let scope and name trade characters (app:a / bTOKEN is not app:ab / TOKEN)", () => {
    const c = new SecretCipher(key);
    expect(() => c.open("app:ab", "TOKEN", c.seal("app:a", "bTOKEN", "v"))).toThrow();
  });
  it("refuses another master key", () => {
    const sealed = new SecretCipher(key).seal("workspace", "K", "v");
    expect(() => new SecretCipher(Buffer.alloc(32, 8)).open("workspace", "K", sealed)).toThrow();
  });
  it("refuses a tampered ciphertext, tag or nonce", () => {
    const c = new SecretCipher(key);
    const sealed = c.seal("workspace", "K", "value");
    const flip = (b: Uint8Array, i: number) => {
      const copy = Buffer.from(b);
      copy[i] = copy[i]! ^ 1;
      return copy;
    };
    expect(() => c.open("workspace", "K", { ...sealed, ciphertext: flip(sealed.ciphertext, 0) })).toThrow();
    expect(() => c.open("workspace", "K", { ...sealed, ciphertext: flip(sealed.ciphertext, sealed.ciphertext.length - 1) })).toThrow();
    expect(() => c.open("workspace", "K", { ...sealed, nonce: flip(sealed.nonce, 0) })).toThrow();
    expect(() => c.open("workspace", "K", { ...sealed, ciphertext: Buffer.from(sealed.ciphertext).subarray(0, sealed.ciphertext.length - 1) })).toThrow();
  });
});

describe("master key", () => {
  it("is created once with 32 random bytes, mode 0600, and reused", () => {
    const path = join(dir, "master.key");
    const k1 = loadOrCreateMasterKey(path);
    const k2 = loadOrCreateMasterKey(path);
    expect(k1.length).toBe(32);
    expect(k1.equals(k2)).toBe(true);
    expect(k1.equals(Buffer.alloc(32))).toBe(false);
    expect(loadOrCreateMasterKey(join(dir, "other.key")).equals(k1)).toBe(false);
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });
  it("keeps an existing key and tightens its mode back to 0600", () => {
    const path = join(dir, "master.key");
    const existing = Buffer.alloc(32, 3);
    writeFileSync(path, existing);
    chmodSync(path, 0o644);
    expect(loadOrCreateMasterKey(path).equals(existing)).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readFileSync(path).equals(existing)).toBe(true);
  });
  it("refuses a key file of the wrong size, naming the file and what to do", () => {
    const path = join(dir, "master.key");
    writeFileSync(path, Buffer.alloc(31));
    expect(() => loadOrCreateMasterKey(path)).toThrow(`master key ${path} is 31 bytes, expected 32; it is corrupt (restore it from a backup)`);
  });
  it("reports the failed create itself when it cannot create the key, instead of treating the key as present", () => {
    expect(() => loadOrCreateMasterKey(join(dir, "missing", "master.key"))).toThrow(expect.objectContaining({ code: "ENOENT", syscall: "open" }));
  });
  it("leaves no file descriptor open (aegisd runs for weeks)", () => {
    const open = () => readdirSync("/proc/self/fd").length;
    const before = open();
    for (let i = 0; i < 20; i++) loadOrCreateMasterKey(join(dir, `k${i}.key`));
    expect(open()).toBe(before);
  });
});

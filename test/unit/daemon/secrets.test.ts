import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openDatabase } from "../../../src/daemon/db.ts";
import { AppsTable } from "../../../src/daemon/registry/apps.ts";
import { SecretsTable } from "../../../src/daemon/registry/secrets.ts";
import { AppsService } from "../../../src/daemon/apps/service.ts";
import { ImageStore } from "../../../src/daemon/images/index.ts";
import { ImagesService } from "../../../src/daemon/images/service.ts";
import { loadOrCreateMasterKey, SecretCipher } from "../../../src/daemon/secrets/cipher.ts";
import { SecretsService } from "../../../src/daemon/secrets/service.ts";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "aegis-secrets-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function setup() {
  const db = openDatabase(join(dir, "aegis.db"));
  const key = loadOrCreateMasterKey(join(dir, "master.key"));
  const secrets = new SecretsService(new SecretsTable(db), new SecretCipher(key));
  const table = new AppsTable(db);
  const images = new ImagesService(new ImageStore(join(dir, "images")), secrets, () => table.releaseDigests());
  const apps = new AppsService(table, images);
  return { db, secrets, apps };
}

describe("SecretCipher", () => {
  it("round-trips and uses a fresh nonce per value", () => {
    const c = new SecretCipher(Buffer.alloc(32, 7));
    const a = c.seal("workspace", "K", "v");
    const b = c.seal("workspace", "K", "v");
    expect(Buffer.from(a.nonce).equals(Buffer.from(b.nonce))).toBe(false);
    expect(c.open("workspace", "K", a)).toBe("v");
  });
  it("refuses a ciphertext moved to another secret's name", () => {
    const c = new SecretCipher(Buffer.alloc(32, 7));
    const sealed = c.seal("workspace", "A", "value");
    expect(() => c.open("workspace", "B", sealed)).toThrow();
  });
});

describe("master key", () => {
  it("is created once with mode 0600 and reused", () => {
    const path = join(dir, "master.key");
    const k1 = loadOrCreateMasterKey(path);
    const k2 = loadOrCreateMasterKey(path);
    expect(k1.equals(k2)).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });
});

describe("SecretsService", () => {
  it("never stores a value in plaintext in the database files", () => {
    const { db, secrets } = setup();
    const value = "sk-plaintext-canary-4242";
    secrets.set({ kind: "workspace" }, "OPENAI_API_KEY", value);
    db.run("PRAGMA wal_checkpoint(FULL)");
    db.close();
    for (const f of ["aegis.db", "aegis.db-wal"]) {
      let bytes: Buffer;
      try {
        bytes = readFileSync(join(dir, f));
      } catch {
        continue;
      }
      expect(bytes.includes(Buffer.from(value))).toBe(false);
    }
  });
  it("lists names only and resolves app secrets over workspace ones", () => {
    const { secrets, apps } = setup();
    const app = apps.create({ name: "web", image: "alpine", command: ["true"], expose: [] });
    secrets.set({ kind: "workspace" }, "TOKEN", "ws");
    secrets.set({ kind: "workspace" }, "OTHER", "o");
    secrets.set({ kind: "app", appId: app.id }, "TOKEN", "app");
    expect(JSON.stringify(secrets.list({ kind: "workspace" }))).not.toContain("ws\"");
    expect(secrets.list({ kind: "workspace" }).map((s) => s.name)).toEqual(["OTHER", "TOKEN"]);
    expect(secrets.resolve(["TOKEN"], app.id)).toEqual({ TOKEN: "app" });
    expect(secrets.resolve("*", app.id)).toEqual({ TOKEN: "app", OTHER: "o" });
    expect(() => secrets.resolve(["MISSING"])).toThrow("secret MISSING not found");
  });
  it("deletes app secrets together with their app", () => {
    const { secrets, apps } = setup();
    const app = apps.create({ name: "web", image: "alpine", command: ["true"], expose: [] });
    secrets.set({ kind: "app", appId: app.id }, "K", "v");
    apps.delete("web");
    expect(secrets.list({ kind: "app", appId: app.id })).toEqual([]);
  });
});

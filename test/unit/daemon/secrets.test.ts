import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
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
  it("refuses an app secret's stored row copied into the workspace scope (and back)", () => {
    const { db, secrets, apps } = setup();
    const app = apps.create({ name: "web", image: "alpine", command: ["true"], expose: [] });
    secrets.set({ kind: "app", appId: app.id }, "TOKEN", "app-only");
    secrets.set({ kind: "workspace" }, "TOKEN", "workspace-value");
    // Someone with write access to the database moves the app's ciphertext onto the workspace row.
    db.run("UPDATE workspace_secrets SET nonce = (SELECT nonce FROM app_secrets WHERE name = 'TOKEN'), ciphertext = (SELECT ciphertext FROM app_secrets WHERE name = 'TOKEN') WHERE name = 'TOKEN'");
    expect(() => secrets.value({ kind: "workspace" }, "TOKEN", "the workspace")).toThrow();
    expect(secrets.value({ kind: "app", appId: app.id }, "TOKEN", "app web")).toBe("app-only");
  });
  it("deletes app secrets together with their app", () => {
    const { secrets, apps } = setup();
    const app = apps.create({ name: "web", image: "alpine", command: ["true"], expose: [] });
    secrets.set({ kind: "app", appId: app.id }, "K", "v");
    apps.delete("web");
    expect(secrets.list({ kind: "app", appId: app.id })).toEqual([]);
  });
});

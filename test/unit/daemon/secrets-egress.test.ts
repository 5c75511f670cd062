/** Secrets kept out of the guest: bindings stored with a secret, the API for them, and the plan a VM gets. */
import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openDatabase } from "../../../src/daemon/db.ts";
import { SecretsTable } from "../../../src/daemon/registry/secrets.ts";
import { loadOrCreateMasterKey, SecretCipher } from "../../../src/daemon/secrets/cipher.ts";
import { SecretsService } from "../../../src/daemon/secrets/service.ts";
import { testApi } from "../../helpers/api-app.ts";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "aegis-secrets-egress-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function service(): SecretsService {
  const db = openDatabase(join(dir, "aegis.db"));
  return new SecretsService(new SecretsTable(db), new SecretCipher(loadOrCreateMasterKey(join(dir, "master.key"))));
}
const ws = { kind: "workspace" } as const;

describe("SecretsService.plan", () => {
  it("gives the guest a placeholder for a substituted secret and the value for a raw one", () => {
    const s = service();
    s.set(ws, "OPENAI_API_KEY", "sk-real");
    s.set(ws, "DB_PASSWORD", "pw-real");
    s.set(ws, "GH_TOKEN", "ghp-real", { mode: "hosts", hosts: ["api.github.com"] });
    const plan = s.plan("*", undefined, {});
    expect(plan.env.OPENAI_API_KEY).toMatch(/^AEGIS_SECRET_[0-9a-f]{32}$/);
    expect(plan.env.GH_TOKEN).toMatch(/^AEGIS_SECRET_[0-9a-f]{32}$/);
    expect(plan.env.GH_TOKEN).not.toBe(plan.env.OPENAI_API_KEY);
    expect(plan.env.DB_PASSWORD).toBe("pw-real");
    expect(plan.raw).toEqual(["DB_PASSWORD"]);
    expect(plan.substitutions.map((x) => [x.name, x.value, x.hosts])).toEqual([
      ["GH_TOKEN", "ghp-real", [{ name: "api.github.com", port: 443 }]],
      ["OPENAI_API_KEY", "sk-real", [{ name: "api.openai.com", port: 443 }]],
    ]);
    expect(JSON.stringify(plan.env)).not.toContain("sk-real");
  });

  it("keeps the placeholder across updates of the value, and follows the VM's base URL", () => {
    const s = service();
    s.set(ws, "OPENAI_API_KEY", "sk-1");
    const first = s.plan(["OPENAI_API_KEY"], undefined, {}).env.OPENAI_API_KEY;
    s.set(ws, "OPENAI_API_KEY", "sk-2");
    const again = s.plan(["OPENAI_API_KEY"], undefined, {});
    expect(again.env.OPENAI_API_KEY).toBe(first!);
    expect(again.substitutions[0]!.value).toBe("sk-2");
    expect(s.plan(["OPENAI_API_KEY"], undefined, { OPENAI_BASE_URL: "https://gw.example.com/v1" }).substitutions[0]!.hosts).toEqual([{ name: "gw.example.com", port: 443 }]);
    // A stand-in on plain http cannot get a substituted key: the value goes in raw.
    expect(s.plan(["OPENAI_API_KEY"], undefined, { OPENAI_BASE_URL: "http://10.0.2.2:8080/v1" }).env.OPENAI_API_KEY).toBe("sk-2");
    s.set(ws, "OPENAI_API_KEY", "sk-3", { mode: "raw" });
    expect(s.plan(["OPENAI_API_KEY"], undefined, {}).raw).toEqual(["OPENAI_API_KEY"]);
    expect(() => s.plan(["NOPE"], undefined, {})).toThrow("secret NOPE not found");
  });
});

describe("secret binding endpoints", () => {
  it("stores --host and --raw bindings and lists them (never a value)", async () => {
    using api = testApi();
    expect((await api.call("PUT", "/v1/secrets/GH_TOKEN", { value: "ghp-x", hosts: ["API.GitHub.com", "up.example.com:8443"] })).status).toBe(200);
    expect((await api.call("PUT", "/v1/secrets/PLAIN", { value: "p", raw: true })).status).toBe(200);
    expect((await api.call("PUT", "/v1/secrets/OPENAI_API_KEY", { value: "sk-x" })).status).toBe(200);
    const list = (await api.call("GET", "/v1/secrets")).body.secrets;
    expect(list.map((s: { name: string; egress: unknown }) => [s.name, s.egress])).toEqual([
      ["GH_TOKEN", { mode: "hosts", hosts: ["api.github.com", "up.example.com:8443"] }],
      ["OPENAI_API_KEY", { mode: "auto" }],
      ["PLAIN", { mode: "raw" }],
    ]);
    expect(JSON.stringify(list)).not.toContain("ghp-x");
  });

  it("rejects bad hosts and hosts with raw, changing nothing", async () => {
    using api = testApi();
    const ip = await api.call("PUT", "/v1/secrets/K", { value: "v", hosts: ["10.0.0.1"] });
    expect(ip.status).toBe(400);
    expect(ip.body.error.message).toContain('invalid secret host "10.0.0.1"');
    const both = await api.call("PUT", "/v1/secrets/K", { value: "v", hosts: ["a.example"], raw: true });
    expect(both.status).toBe(400);
    expect(both.body.error.message).toContain("hosts and raw exclude each other");
    expect((await api.call("PUT", "/v1/secrets/K", { value: "v", hosts: [] })).status).toBe(400);
    expect((await api.call("GET", "/v1/secrets")).body.secrets).toEqual([]);
  });
});

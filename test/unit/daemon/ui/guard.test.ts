import { describe, expect, it } from "bun:test";
import { mkdtempSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadOrCreateUiToken } from "../../../../src/daemon/ui/token.ts";
import { instanceRow, testUi, UI_PORT } from "../../../helpers/ui-app.ts";

describe("UI token", () => {
  it("is made once per home, 0600, and reused", () => {
    const dir = mkdtempSync(join(tmpdir(), "aegis-ui-token-"));
    const a = loadOrCreateUiToken(join(dir, "ui.token"));
    expect(a).toMatch(/^[0-9a-f]{64}$/);
    expect(statSync(join(dir, "ui.token")).mode & 0o777).toBe(0o600);
    expect(loadOrCreateUiToken(join(dir, "ui.token"))).toBe(a);
    const other = mkdtempSync(join(tmpdir(), "aegis-ui-token-"));
    expect(loadOrCreateUiToken(join(other, "ui.token"))).not.toBe(a);
  });
  it("refuses a malformed token file instead of replacing it", () => {
    const dir = mkdtempSync(join(tmpdir(), "aegis-ui-token-"));
    writeFileSync(join(dir, "ui.token"), "not-a-token\n");
    expect(() => loadOrCreateUiToken(join(dir, "ui.token"))).toThrow("is not a UI token");
  });
});

describe("UI guard", () => {
  it("refuses a request without a session and one with a wrong token", async () => {
    using ui = testUi();
    const none = await ui.browse("/instances", { headers: { cookie: "" } });
    expect(none.status).toBe(401);
    expect(await none.text()).toContain("aegis ui");
    const wrongCookie = await ui.browse("/instances", { headers: { cookie: `aegis_ui_${UI_PORT}=${"0".repeat(64)}` } });
    expect(wrongCookie.status).toBe(401);
    const wrongToken = await ui.browse(`/instances?token=${"0".repeat(64)}`, { headers: { cookie: "" } });
    expect(wrongToken.status).toBe(403);
    expect(wrongToken.headers.get("set-cookie")).toBeNull();
  });
  it("trades the URL token for an HttpOnly SameSite=Strict cookie and drops it from the URL", async () => {
    using ui = testUi();
    const res = await ui.browse(`/instances?token=${ui.token}&x=1`, { headers: { cookie: "" } });
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("/instances?x=1");
    const cookie = res.headers.get("set-cookie") ?? "";
    expect(cookie).toContain(`aegis_ui_${UI_PORT}=${ui.token}`);
    expect(cookie).toContain("HttpOnly");
    expect(cookie).toContain("SameSite=Strict");
    const page = await ui.browse("/instances");
    expect(page.status).toBe(200);
    expect(page.headers.get("content-security-policy")).toContain("script-src 'self'");
    expect(page.headers.get("x-frame-options")).toBe("DENY");
  });
  it("refuses a foreign Host header even with the right cookie (DNS rebinding)", async () => {
    using ui = testUi();
    for (const host of [`evil.example:${UI_PORT}`, "127.0.0.1:1", `attacker.localhost:${UI_PORT}`, ""]) {
      const res = await ui.browse("/instances", { host });
      expect(res.status).toBe(421);
    }
    expect((await ui.browse("/instances", { host: `localhost:${UI_PORT}` })).status).toBe(200);
    // The token exchange is refused on a foreign Host too: no cookie for the attacker's name.
    const ex = await ui.browse(`/?token=${ui.token}`, { host: `evil.example:${UI_PORT}`, headers: { cookie: "" } });
    expect(ex.status).toBe(421);
    expect(ex.headers.get("set-cookie")).toBeNull();
  });
  it("refuses state-changing requests without the CSRF header or from a foreign Origin", async () => {
    using ui = testUi();
    ui.table.insert(instanceRow("i-1", "web", { state: "running" }));
    const noCsrf = await ui.browse("/instances/web/stop", { method: "POST", csrf: false });
    expect(noCsrf.status).toBe(403);
    expect(await noCsrf.text()).toContain("X-Aegis-CSRF");
    const foreign = await ui.browse("/instances/web/delete", { method: "POST", headers: { origin: "http://evil.example" } });
    expect(foreign.status).toBe(403);
    expect(ui.api.services.instances.find("web")?.state).toBe("running");
    const wrong = await ui.browse("/instances/web/delete", { method: "POST", headers: { "x-aegis-csrf": "f".repeat(64) } });
    expect(wrong.status).toBe(403);
    expect(ui.api.services.instances.find("web")).not.toBeNull();
    // With the header the request reaches the route (an unknown instance: the API's 404 envelope).
    const ok = await ui.browse("/instances/nope/pause", { method: "POST" });
    expect(ok.status).toBe(404);
    expect(((await ok.json()) as { error: { code: string } }).error.code).toBe("not_found");
  });
});

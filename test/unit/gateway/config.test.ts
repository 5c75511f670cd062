import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chatAllowed, loadGatewayConfig } from "../../../src/gateway/config.ts";

let home: string;
beforeEach(() => {
  home = mkdtempSync(join(tmpdir(), "aegis-gwcfg-"));
});
afterEach(() => rmSync(home, { recursive: true, force: true }));

const write = (obj: unknown, name = "gateway.json") => {
  const p = join(home, name);
  writeFileSync(p, typeof obj === "string" ? obj : JSON.stringify(obj));
  return p;
};

describe("loadGatewayConfig", () => {
  it("reads the spec's gateway.json from AEGIS_HOME", () => {
    write({ telegram: { bot_token_secret: "TELEGRAM_BOT_TOKEN", instance: "my-agent", allowed_chats: ["*"] } });
    const c = loadGatewayConfig({ AEGIS_HOME: home });
    expect(c.token).toEqual({ kind: "secret", name: "TELEGRAM_BOT_TOKEN" });
    expect(c.instance).toBe("my-agent");
    expect(c.allowedChats).toBe("*");
    expect(c.socketPath).toBe(join(home, "aegisd.sock"));
    expect(c.statePath).toBe(join(home, "data", "gateway-state.json"));
    expect(c.telegramApiBase).toBe("https://api.telegram.org");
  });

  it("accepts chat ids as numbers or strings and checks them", () => {
    write({ telegram: { bot_token: "1:x", instance: "a", allowed_chats: [123, "-100200"] } });
    const c = loadGatewayConfig({ AEGIS_HOME: home });
    expect(chatAllowed(c, 123)).toBe(true);
    expect(chatAllowed(c, "-100200")).toBe(true);
    expect(chatAllowed(c, 5)).toBe(false);
  });

  it("lets the environment override the file and work without one", () => {
    write({ telegram: { bot_token_secret: "S", instance: "a" } });
    const c = loadGatewayConfig({ AEGIS_HOME: home, TELEGRAM_BOT_TOKEN: "9:tok", AEGIS_GATEWAY_INSTANCE: "b", TELEGRAM_API_BASE: "http://127.0.0.1:1/" });
    expect(c.token).toEqual({ kind: "inline", token: "9:tok" });
    expect(c.instance).toBe("b");
    expect(c.telegramApiBase).toBe("http://127.0.0.1:1");
    rmSync(join(home, "gateway.json"));
    const e = loadGatewayConfig({ AEGIS_HOME: home, TELEGRAM_BOT_TOKEN_SECRET: "S", AEGIS_GATEWAY_INSTANCE: "b", AEGIS_GATEWAY_ALLOWED_CHATS: "1,2" });
    expect(e.token).toEqual({ kind: "secret", name: "S" });
    expect(e.allowedChats).toEqual(new Set(["1", "2"]));
  });

  it("uses AEGIS_GATEWAY_CONFIG and fails clearly when it is missing or invalid", () => {
    const p = write({ telegram: { bot_token: "1:x", instance: "a" } }, "other.json");
    expect(loadGatewayConfig({ AEGIS_HOME: home, AEGIS_GATEWAY_CONFIG: p }).file).toBe(p);
    expect(() => loadGatewayConfig({ AEGIS_HOME: home, AEGIS_GATEWAY_CONFIG: join(home, "nope.json") })).toThrow("cannot read gateway config");
    write("{oops");
    expect(() => loadGatewayConfig({ AEGIS_HOME: home })).toThrow("is not valid JSON");
    write({ telegram: { bot_token: "1:x", instance: "a", allowed_chat: ["*"] } });
    expect(() => loadGatewayConfig({ AEGIS_HOME: home })).toThrow("Unrecognized key");
    write({ telegram: { bot_token: "1:x", bot_token_secret: "S", instance: "a" } });
    expect(() => loadGatewayConfig({ AEGIS_HOME: home })).toThrow("sets both");
  });

  it("says there is no config, with the spec's hint, and allows no chat by default", () => {
    expect(() => loadGatewayConfig({ AEGIS_HOME: home })).toThrow(`no gateway config (create ${join(home, "gateway.json")} to enable)`);
    write({ telegram: { bot_token: "1:x" } });
    expect(() => loadGatewayConfig({ AEGIS_HOME: home })).toThrow("no agent instance configured");
    write({ telegram: { bot_token: "1:x", instance: "a" } });
    expect(chatAllowed(loadGatewayConfig({ AEGIS_HOME: home }), 1)).toBe(false);
  });
});

import { describe, expect, it } from "bun:test";
import { loadAgentConfig } from "../../../../guest/agent/config.ts";

describe("loadAgentConfig", () => {
  it("uses OpenAI gpt-4o by default and the spec's defaults", () => {
    const c = loadAgentConfig({ OPENAI_API_KEY: "sk-1" });
    expect(c).toMatchObject({ provider: "openai", providerLabel: "OpenAI", apiKey: "sk-1", model: "gpt-4o", baseUrl: "https://api.openai.com/v1", port: 7778, host: "127.0.0.1" });
    expect(c).toMatchObject({ systemPrompt: "You are a helpful assistant.", sessionsDir: "/workspace/sessions", contextTurns: 40, contextChars: 24000 });
  });

  it("prefers Anthropic when its key is set, with overrides", () => {
    const c = loadAgentConfig({ OPENAI_API_KEY: "sk", ANTHROPIC_API_KEY: "ak", AEGIS_MODEL: "claude-x", ANTHROPIC_BASE_URL: "http://127.0.0.1:9/", AEGIS_SYSTEM_PROMPT: "be brief" });
    expect(c).toMatchObject({ provider: "anthropic", providerLabel: "Anthropic", apiKey: "ak", model: "claude-x", baseUrl: "http://127.0.0.1:9", systemPrompt: "be brief" });
    expect(loadAgentConfig({ ANTHROPIC_API_KEY: "ak" }).model).toBe("claude-sonnet-4-5");
  });

  it("starts without any key (answers with errors later)", () => {
    expect(loadAgentConfig({}).apiKey).toBeUndefined();
  });

  it("rejects invalid numbers and URLs with the variable name", () => {
    expect(() => loadAgentConfig({ AEGIS_CONTEXT_TURNS: "many" })).toThrow('AEGIS_CONTEXT_TURNS="many" is invalid');
    expect(() => loadAgentConfig({ AEGIS_AGENT_PORT: "70000" })).toThrow("AEGIS_AGENT_PORT");
    expect(() => loadAgentConfig({ OPENAI_BASE_URL: "ftp://x" })).toThrow("OPENAI_BASE_URL");
  });
});

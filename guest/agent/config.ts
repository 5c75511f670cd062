/**
 * @module guest/agent/config
 * The agent runtime's settings, all from environment variables (the instance
 * gets its API key as an injected secret). Invalid numbers are errors, never
 * silently replaced by defaults.
 *
 * | variable              | default                          |
 * |-----------------------|----------------------------------|
 * | `ANTHROPIC_API_KEY`   | selects Anthropic when set       |
 * | `OPENAI_API_KEY`      | OpenAI otherwise                 |
 * | `AEGIS_MODEL`         | `claude-sonnet-4-5` / `gpt-4o`   |
 * | `OPENAI_BASE_URL`     | `https://api.openai.com/v1`      |
 * | `ANTHROPIC_BASE_URL`  | `https://api.anthropic.com`      |
 * | `AEGIS_SYSTEM_PROMPT` | `You are a helpful assistant.`   |
 * | `AEGIS_AGENT_PORT`    | 7778 (0 picks a free port)       |
 * | `AEGIS_SESSIONS_DIR`  | `/workspace/sessions`            |
 * | `AEGIS_CONTEXT_TURNS` | 40                               |
 * | `AEGIS_CONTEXT_CHARS` | 24000                            |
 * | `AEGIS_MAX_TOKENS`    | 4096 (Anthropic `max_tokens`)    |
 * | `AEGIS_LLM_CONNECT_TIMEOUT_MS` | 60000 (until response headers) |
 * | `AEGIS_LLM_IDLE_TIMEOUT_MS`    | 60000 (between stream chunks)  |
 * | `AEGIS_LLM_RETRY_BASE_MS`      | 500 (first backoff step)       |
 * | `AEGIS_AGENT_TOOLS`   | `none`; `mcp` enables tool calling |
 * | `AEGIS_MCP_COMMAND`   | `/usr/bin/aegis-mcp-guest`       |
 *
 * `AEGIS_AGENT_TOOLS=mcp` (the agent kit sets it) makes the agent start the
 * MCP server named by `AEGIS_MCP_COMMAND` (program and arguments separated by
 * spaces, no quoting) and offer its tools to the model: each under its MCP
 * name, with its MCP description and JSON input schema, as OpenAI
 * `tools: [{type: "function", function: {name, description, parameters}}]`
 * or Anthropic `tools: [{name, description, input_schema}]`. Tool results go
 * back to the model (OpenAI `role: "tool"` messages, Anthropic `tool_result`
 * blocks, errors flagged) and it is asked again, at most 8 rounds per user
 * message. The session JSONL keeps only user and assistant text turns. See
 * tools.ts and runtime.ts.
 */

/** The two supported LLM providers. */
export type ProviderKind = "openai" | "anthropic";

/** `AEGIS_AGENT_TOOLS`: no tools, or the tools of `aegis-mcp-guest`. */
export type ToolsMode = "none" | "mcp";

/** Default `AEGIS_MCP_COMMAND`: the MCP server injected into every guest. */
export const DEFAULT_MCP_COMMAND = "/usr/bin/aegis-mcp-guest";

/** Everything the agent needs to run. */
export interface AgentConfig {
  host: string;
  port: number;
  provider: ProviderKind;
  /** As printed in `LLM provider: ...`. */
  providerLabel: "OpenAI" | "Anthropic";
  /** Undefined when neither key is set: the agent starts and answers every message with an error. */
  apiKey: string | undefined;
  model: string;
  baseUrl: string;
  systemPrompt: string;
  sessionsDir: string;
  contextTurns: number;
  contextChars: number;
  maxTokens: number;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  retryBaseMs: number;
  /** Tries per request for 429/5xx before any text was emitted (spec: retries with backoff). */
  maxAttempts: number;
  /** Whether the model gets tools (AEGIS_AGENT_TOOLS). */
  tools: ToolsMode;
  /** The MCP server to start for `tools: "mcp"`: program and arguments. */
  mcpCommand: string[];
}

/** Default tether port inside the VM. */
export const DEFAULT_AGENT_PORT = 7778;
/** Default system prompt (spec). */
export const DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant.";
/** Default models. */
export const DEFAULT_MODELS = { openai: "gpt-4o", anthropic: "claude-sonnet-4-5" } as const;
/** Default API base URLs. */
export const DEFAULT_BASE_URLS = { openai: "https://api.openai.com/v1", anthropic: "https://api.anthropic.com" } as const;

type Env = Record<string, string | undefined>;

function nonEmpty(env: Env, name: string): string | undefined {
  const v = env[name];
  return v !== undefined && v.trim().length > 0 ? v : undefined;
}

/** Read an integer variable within [min, max]; throws a message naming the variable and value. */
function intVar(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = nonEmpty(env, name);
  if (raw === undefined) return fallback;
  const n = Number(raw.trim());
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new Error(`${name}=${JSON.stringify(raw)} is invalid: must be an integer from ${min} to ${max}`);
  }
  return n;
}

function baseUrl(env: Env, name: string, fallback: string): string {
  const raw = nonEmpty(env, name) ?? fallback;
  let url: URL;
  try {
    url = new URL(raw);
  } catch (err) {
    throw new Error(`${name}=${JSON.stringify(raw)} is not a URL`, { cause: err });
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error(`${name}=${JSON.stringify(raw)} must be an http or https URL`);
  return raw.replace(/\/+$/, "");
}

function toolsMode(env: Env): ToolsMode {
  const raw = nonEmpty(env, "AEGIS_AGENT_TOOLS")?.trim().toLowerCase() ?? "none";
  if (raw === "none" || raw === "mcp") return raw;
  throw new Error(`AEGIS_AGENT_TOOLS=${JSON.stringify(env.AEGIS_AGENT_TOOLS)} is invalid: must be "mcp" (offer the aegis-mcp-guest tools) or "none"`);
}

/** Build the configuration from an environment (default `process.env`). */
export function loadAgentConfig(env: Env = process.env): AgentConfig {
  const anthropicKey = nonEmpty(env, "ANTHROPIC_API_KEY");
  const provider: ProviderKind = anthropicKey ? "anthropic" : "openai";
  const apiKey = provider === "anthropic" ? anthropicKey : nonEmpty(env, "OPENAI_API_KEY");
  return {
    host: "127.0.0.1",
    port: intVar(env, "AEGIS_AGENT_PORT", DEFAULT_AGENT_PORT, 0, 65535),
    provider,
    providerLabel: provider === "anthropic" ? "Anthropic" : "OpenAI",
    apiKey: apiKey?.trim(),
    model: nonEmpty(env, "AEGIS_MODEL")?.trim() ?? DEFAULT_MODELS[provider],
    baseUrl:
      provider === "anthropic"
        ? baseUrl(env, "ANTHROPIC_BASE_URL", DEFAULT_BASE_URLS.anthropic)
        : baseUrl(env, "OPENAI_BASE_URL", DEFAULT_BASE_URLS.openai),
    systemPrompt: nonEmpty(env, "AEGIS_SYSTEM_PROMPT") ?? DEFAULT_SYSTEM_PROMPT,
    sessionsDir: nonEmpty(env, "AEGIS_SESSIONS_DIR") ?? "/workspace/sessions",
    contextTurns: intVar(env, "AEGIS_CONTEXT_TURNS", 40, 1, 10_000),
    contextChars: intVar(env, "AEGIS_CONTEXT_CHARS", 24_000, 1, 10_000_000),
    maxTokens: intVar(env, "AEGIS_MAX_TOKENS", 4096, 1, 1_000_000),
    connectTimeoutMs: intVar(env, "AEGIS_LLM_CONNECT_TIMEOUT_MS", 60_000, 1, 3_600_000),
    idleTimeoutMs: intVar(env, "AEGIS_LLM_IDLE_TIMEOUT_MS", 60_000, 1, 3_600_000),
    retryBaseMs: intVar(env, "AEGIS_LLM_RETRY_BASE_MS", 500, 0, 60_000),
    maxAttempts: 3,
    tools: toolsMode(env),
    mcpCommand: (nonEmpty(env, "AEGIS_MCP_COMMAND") ?? DEFAULT_MCP_COMMAND).trim().split(/\s+/),
  };
}

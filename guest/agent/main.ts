/**
 * @module guest/agent/main
 * `aegis-agent`: the Agent Kit LLM runtime, run inside the VM as the
 * instance command (`aegis __agent`, or the `/usr/bin/aegis-agent` link).
 *
 * It prints the spec's three start lines on stdout (the instance log):
 *
 * ```
 * aegis-agent starting
 * LLM provider: OpenAI
 * agent listening on 127.0.0.1:7778
 * ```
 *
 * then serves the harness over NDJSON on TCP (see wire.ts) and answers each
 * `user.message` by streaming from OpenAI or Anthropic (see runtime.ts).
 * Configuration is environment only (see config.ts). With
 * `AEGIS_AGENT_TOOLS=mcp` it first starts `aegis-mcp-guest` and offers its
 * tools to the model (see tools.ts); if that server cannot start, the agent
 * logs the error and answers without tools. SIGTERM/SIGINT cancel
 * in-flight requests (each still gets its `assistant.done`) and exit.
 */
import { loadAgentConfig } from "./config.ts";
import { errorMessage, stderrLog } from "./log.ts";
import { createProvider } from "./providers/index.ts";
import { AgentRuntime } from "./runtime.ts";
import { SessionStore } from "./sessions.ts";
import { McpToolBox } from "./tools.ts";
import { TetherWire } from "./wire.ts";

const USAGE = `usage: aegis-agent

Agent Kit LLM runtime (runs inside an Aegis VM). Listens for tether frames on
127.0.0.1:7778 and answers user messages with OpenAI or Anthropic.
Configured by environment: ANTHROPIC_API_KEY or OPENAI_API_KEY, AEGIS_MODEL,
OPENAI_BASE_URL, ANTHROPIC_BASE_URL, AEGIS_SYSTEM_PROMPT, AEGIS_SESSIONS_DIR,
AEGIS_CONTEXT_TURNS, AEGIS_CONTEXT_CHARS, AEGIS_AGENT_PORT, AEGIS_AGENT_TOOLS
(mcp: offer the aegis-mcp-guest tools to the model), AEGIS_MCP_COMMAND.
`;

/** Run the agent until SIGTERM/SIGINT. */
export async function main(argv: string[]): Promise<void> {
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(USAGE);
    return;
  }
  if (argv.length > 0) {
    process.stderr.write(`aegis-agent: unexpected argument ${JSON.stringify(argv[0])}\nhint: aegis-agent takes no arguments; configure it with environment variables (aegis-agent --help)\n`);
    process.exit(2);
  }
  const log = stderrLog;
  let config;
  try {
    config = loadAgentConfig(process.env);
  } catch (err) {
    process.stderr.write(`aegis-agent: ${errorMessage(err)}\n`);
    process.exit(2);
  }
  process.stdout.write("aegis-agent starting\n");
  process.stdout.write(`LLM provider: ${config.providerLabel}\n`);
  const missingKeyHint = config.provider === "anthropic" ? "ANTHROPIC_API_KEY" : "OPENAI_API_KEY";
  if (!config.apiKey) log.warn(`neither ANTHROPIC_API_KEY nor OPENAI_API_KEY is set; every message will be answered with an error`);
  log.info(`model ${config.model} at ${config.baseUrl}; sessions in ${config.sessionsDir}`);

  let tools: McpToolBox | undefined;
  if (config.tools === "mcp") {
    try {
      tools = await McpToolBox.start(config.mcpCommand);
      log.info(`tools from ${config.mcpCommand.join(" ")}: ${tools.specs.map((t) => t.name).join(", ")}`);
    } catch (err) {
      // The agent still answers; the model just gets no tools.
      log.error(`${errorMessage(err)}\nhint: answering without tools; check AEGIS_MCP_COMMAND (default /usr/bin/aegis-mcp-guest) or unset AEGIS_AGENT_TOOLS`);
    }
  }

  // The wire and the runtime reference each other (frames in, frames out).
  let wire: TetherWire | undefined;
  const runtime = new AgentRuntime({
    provider: createProvider(config),
    missingKeyHint,
    sessions: new SessionStore(config.sessionsDir, Math.max(config.contextTurns * 2, 100), log),
    systemPrompt: config.systemPrompt,
    contextTurns: config.contextTurns,
    contextChars: config.contextChars,
    maxAttempts: config.maxAttempts,
    retryBaseMs: config.retryBaseMs,
    emit: (frame) => wire?.send(frame),
    log,
    ...(tools ? { tools } : {}),
  });
  wire = new TetherWire({ host: config.host, port: config.port, onFrame: (f) => runtime.handle(f), log });
  const port = await wire.listen();
  process.stdout.write(`agent listening on ${config.host}:${port}\n`);

  const activeWire = wire;
  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      log.info(`${sig}: cancelling in-flight requests and stopping`);
      runtime.cancelAll();
      const deadline = setTimeout(resolve, 2000);
      void runtime.whenIdle().then(() => {
        clearTimeout(deadline);
        resolve();
      });
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
  // Give the last frames a moment to reach the harness before closing.
  await new Promise((r) => setTimeout(r, 50));
  await activeWire.close();
  await tools?.close();
}

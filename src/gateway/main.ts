/**
 * @module gateway/main
 * `aegis-gateway`: the Agent Kit's Telegram gateway, a host daemon started by
 * `aegis up` (kit daemons) or by hand. It reads its config (config.ts),
 * resolves the bot token through aegisd, and bridges Telegram chats to the
 * agent instance's tether until SIGTERM/SIGINT.
 */
import { UnixTetherClient } from "./aegis-client.ts";
import { GatewayConfigError, loadGatewayConfig } from "./config.ts";
import { checkBot, Gateway, GatewayStartError, resolveToken, telegramFor } from "./gateway.ts";
import { createLog, describeError, redact } from "./log.ts";

const USAGE = `usage: aegis-gateway

Agent Kit Telegram gateway. Reads $AEGIS_HOME/gateway.json (or AEGIS_GATEWAY_CONFIG):
  {"telegram": {"bot_token_secret": "TELEGRAM_BOT_TOKEN", "instance": "my-agent", "allowed_chats": ["*"]}}
Environment overrides: TELEGRAM_BOT_TOKEN, TELEGRAM_BOT_TOKEN_SECRET, AEGIS_GATEWAY_INSTANCE,
AEGIS_GATEWAY_ALLOWED_CHATS, TELEGRAM_API_BASE.
`;

/** Run the gateway until SIGTERM/SIGINT. Exits 2 on configuration errors, 1 on startup failures. */
export async function main(argv: string[]): Promise<void> {
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(USAGE);
    return;
  }
  if (argv.length > 0) {
    process.stderr.write(`aegis-gateway: unexpected argument ${JSON.stringify(argv[0])}\nhint: aegis-gateway takes no arguments (aegis-gateway --help)\n`);
    process.exit(2);
  }
  const log = createLog();
  const stop = new AbortController();
  let gateway: Gateway | undefined;
  const onSignal = (sig: string) => {
    log.info(`${sig}: stopping`);
    stop.abort();
    void gateway?.stop();
  };
  process.once("SIGTERM", () => onSignal("SIGTERM"));
  process.once("SIGINT", () => onSignal("SIGINT"));
  try {
    const config = loadGatewayConfig(process.env);
    const aegis = new UnixTetherClient({
      socketPath: config.socketPath,
      instance: config.instance,
      onBadLine: (why) => log.warn(`skipping a tether stream line: ${why}`),
    });
    const token = await resolveToken(config, aegis, log, stop.signal);
    const telegram = telegramFor(config, token, log);
    const bot = await checkBot(telegram);
    if (stop.signal.aborted) return;
    const allowed = config.allowedChats === "*" ? "all chats" : config.allowedChats.size === 0 ? "no chats (set telegram.allowed_chats)" : `chats ${[...config.allowedChats].join(", ")}`;
    log.info(`${bot} -> instance '${config.instance}'; allowing ${allowed}`);
    if (config.allowedChats !== "*" && config.allowedChats.size === 0) log.warn('telegram.allowed_chats is empty: every message will be ignored (use ["*"] or chat ids)');
    gateway = new Gateway(config, telegram, aegis, log);
    await gateway.start();
    await gateway.stop();
  } catch (err) {
    if (stop.signal.aborted) return; // Stopped while starting up: not a failure.
    if (err instanceof GatewayConfigError || err instanceof GatewayStartError) {
      process.stderr.write(`aegis-gateway: ${describeError(err)}\nhint: ${err.hint}\n`);
      process.exit(err instanceof GatewayConfigError ? 2 : 1);
    }
    // Printed here rather than by the entry point so the stack passes the token redactor.
    process.stderr.write(`aegis-gateway: fatal: ${redact(err instanceof Error ? (err.stack ?? err.message) : String(err))}\n`);
    process.exit(1);
  }
}

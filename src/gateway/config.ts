/**
 * @module gateway/config
 * Gateway configuration: `AEGIS_GATEWAY_CONFIG` or `$AEGIS_HOME/gateway.json`
 * (spec "Configure the gateway"), with environment variables taking
 * precedence over the file:
 *
 * | file (`telegram.*`)  | env                         |
 * |----------------------|-----------------------------|
 * | `bot_token`          | `TELEGRAM_BOT_TOKEN`        |
 * | `bot_token_secret`   | `TELEGRAM_BOT_TOKEN_SECRET` |
 * | `instance`           | `AEGIS_GATEWAY_INSTANCE`    |
 * | `allowed_chats`      | `AEGIS_GATEWAY_ALLOWED_CHATS` (comma-separated) |
 * | `poll_timeout`       | (seconds of `getUpdates` long polling, default 25) |
 * | -                    | `TELEGRAM_API_BASE` (default https://api.telegram.org) |
 *
 * With no `allowed_chats` at all, no chat is allowed (the bot would otherwise
 * spend the owner's LLM key on anyone who finds it); the gateway says so.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { aegisHome } from "../paths.ts";

/** A chat id in the config: digits (optionally negative) as a number or a string, or `"*"`. */
const ChatId = z.union([z.number().int(), z.string().regex(/^(\*|-?\d+)$/, 'must be a chat id (digits, optionally negative) or "*"')]);

/** `gateway.json`. */
export const GatewayFile = z
  .object({
    telegram: z
      .object({
        bot_token_secret: z.string().min(1).optional(),
        bot_token: z.string().min(1).optional(),
        instance: z.string().min(1).optional(),
        allowed_chats: z.array(ChatId).optional(),
        poll_timeout: z.number().int().min(0).max(50).optional(),
      })
      .strict(),
  })
  .strict();
export type GatewayFile = z.infer<typeof GatewayFile>;

/** Where the bot token comes from. */
export type TokenSource = { kind: "inline"; token: string } | { kind: "secret"; name: string };

/** The resolved configuration. */
export interface GatewayConfig {
  /** File the config came from, if any (for messages). */
  file: string | undefined;
  token: TokenSource;
  instance: string;
  /** `"*"` for every chat, else the allowed chat ids as strings. */
  allowedChats: "*" | Set<string>;
  pollTimeoutSec: number;
  telegramApiBase: string;
  home: string;
  socketPath: string;
  statePath: string;
}

/** A configuration problem, with a remedy for the user. */
export class GatewayConfigError extends Error {
  override readonly name = "GatewayConfigError";
  constructor(
    message: string,
    readonly hint: string,
  ) {
    super(message);
  }
}

type Env = Record<string, string | undefined>;

function envVal(env: Env, name: string): string | undefined {
  const v = env[name]?.trim();
  return v ? v : undefined;
}

/** Read and validate the config file; undefined when it does not exist and was not asked for explicitly. */
function readConfigFile(path: string, explicit: boolean): GatewayFile | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT" && !explicit) return undefined;
    throw new GatewayConfigError(`cannot read gateway config ${path}: ${(err as Error).message}`, "check AEGIS_GATEWAY_CONFIG and the file's permissions");
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new GatewayConfigError(`gateway config ${path} is not valid JSON: ${(err as Error).message}`, 'see the example in the Agent Kit docs: {"telegram": {"bot_token_secret": "TELEGRAM_BOT_TOKEN", "instance": "my-agent", "allowed_chats": ["*"]}}');
  }
  const parsed = GatewayFile.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.join(".") || "(root)";
    throw new GatewayConfigError(`gateway config ${path}: ${where}: ${issue?.message ?? "invalid"}`, "valid keys under telegram: bot_token_secret, bot_token, instance, allowed_chats, poll_timeout");
  }
  return parsed.data;
}

function parseAllowed(list: (string | number)[] | undefined): "*" | Set<string> {
  if (!list) return new Set();
  const ids = list.map((c) => String(c).trim());
  return ids.includes("*") ? "*" : new Set(ids);
}

/** Resolve the configuration from the environment and the config file. */
export function loadGatewayConfig(env: Env = process.env): GatewayConfig {
  const home = envVal(env, "AEGIS_HOME") ?? aegisHome();
  const explicitPath = envVal(env, "AEGIS_GATEWAY_CONFIG");
  const file = explicitPath ?? join(home, "gateway.json");
  const cfg = readConfigFile(file, explicitPath !== undefined)?.telegram;

  const envToken = envVal(env, "TELEGRAM_BOT_TOKEN");
  const envSecret = envVal(env, "TELEGRAM_BOT_TOKEN_SECRET");
  if (cfg?.bot_token && cfg.bot_token_secret) {
    throw new GatewayConfigError(`gateway config ${file} sets both telegram.bot_token and telegram.bot_token_secret`, "keep only bot_token_secret (the token stays encrypted in aegis secrets)");
  }
  let token: TokenSource | undefined;
  if (envToken) token = { kind: "inline", token: envToken };
  else if (envSecret) token = { kind: "secret", name: envSecret };
  else if (cfg?.bot_token_secret) token = { kind: "secret", name: cfg.bot_token_secret };
  else if (cfg?.bot_token) token = { kind: "inline", token: cfg.bot_token };
  if (!token) {
    throw new GatewayConfigError(
      cfg ? `gateway config ${file} has no bot token` : `no gateway config (create ${join(home, "gateway.json")} to enable)`,
      'set telegram.bot_token_secret to the name of an aegis secret (aegis secret set TELEGRAM_BOT_TOKEN 123456:ABC-...), or set TELEGRAM_BOT_TOKEN',
    );
  }
  const instance = envVal(env, "AEGIS_GATEWAY_INSTANCE") ?? cfg?.instance;
  if (!instance) throw new GatewayConfigError(`no agent instance configured${cfg ? ` in ${file}` : ""}`, "set telegram.instance (or AEGIS_GATEWAY_INSTANCE) to the agent instance's name, e.g. my-agent");

  const envAllowed = envVal(env, "AEGIS_GATEWAY_ALLOWED_CHATS");
  const allowedChats = parseAllowed(envAllowed ? envAllowed.split(",").filter((s) => s.trim() !== "") : cfg?.allowed_chats);
  const apiBase = (envVal(env, "TELEGRAM_API_BASE") ?? "https://api.telegram.org").replace(/\/+$/, "");
  try {
    new URL(apiBase);
  } catch {
    // new URL only throws TypeError for an unparsable URL, which is exactly this error.
    throw new GatewayConfigError(`TELEGRAM_API_BASE=${JSON.stringify(apiBase)} is not a URL`, "use e.g. https://api.telegram.org");
  }
  return {
    file: cfg ? file : undefined,
    token,
    instance,
    allowedChats,
    pollTimeoutSec: cfg?.poll_timeout ?? 25,
    telegramApiBase: apiBase,
    home,
    socketPath: join(home, "aegisd.sock"),
    statePath: join(home, "data", "gateway-state.json"),
  };
}

/** Whether a chat may talk to the agent. */
export function chatAllowed(config: Pick<GatewayConfig, "allowedChats">, chatId: number | string): boolean {
  return config.allowedChats === "*" || config.allowedChats.has(String(chatId));
}

/**
 * @module gateway/gateway
 * The gateway assembled: resolve the bot token (through aegisd for
 * `bot_token_secret`), check it with `getMe`, then run the Telegram poll loop
 * (ingress.ts) and the tether stream follower (egress.ts) side by side until
 * stopped.
 */
import type { AegisTetherClient } from "./aegis-client.ts";
import { AegisApiError } from "./aegis-client.ts";
import type { GatewayConfig } from "./config.ts";
import { TetherEgress } from "./egress.ts";
import { TelegramIngress, sleep } from "./ingress.ts";
import { describeError, type GatewayLog, registerSecret } from "./log.ts";
import { GatewayState } from "./state.ts";
import { TelegramApi, TelegramError } from "./telegram.ts";
import { DEFAULT_TYPING, TypingIndicator, type TypingOptions } from "./typing.ts";

/** Timing knobs (spec values by default; tests may shorten them). */
export interface GatewayTiming {
  throttleMs: number;
  typing: TypingOptions;
}

/** Spec timings: edits at most once a second, typing every 3 s for at most 2 min. */
export const DEFAULT_TIMING: GatewayTiming = { throttleMs: 1000, typing: DEFAULT_TYPING };

/** A fatal startup problem with a remedy. */
export class GatewayStartError extends Error {
  override readonly name = "GatewayStartError";
  constructor(
    message: string,
    readonly hint: string,
  ) {
    super(message);
  }
}

/** Resolve the bot token, waiting (bounded) for aegisd to come up. */
export async function resolveToken(config: GatewayConfig, aegis: AegisTetherClient, log: GatewayLog, signal: AbortSignal): Promise<string> {
  if (config.token.kind === "inline") return config.token.token;
  const name = config.token.name;
  for (let attempt = 1, delay = 250; ; attempt++, delay = Math.min(delay * 2, 5000)) {
    try {
      return await aegis.resolveSecret(name);
    } catch (err) {
      if (err instanceof AegisApiError && err.status === 404) {
        throw new GatewayStartError(`secret '${name}' (telegram.bot_token_secret) does not exist`, `store the bot token: aegis secret set ${name} 123456:ABC-...`);
      }
      if ((err instanceof AegisApiError && !err.transient) || attempt >= 20 || signal.aborted) {
        throw new GatewayStartError(`cannot resolve secret '${name}' through aegisd at ${config.socketPath}: ${describeError(err)}`, "start the daemon with 'aegis up'");
      }
      log.warn(`aegisd not reachable yet (${describeError(err)}); retrying in ${delay} ms`);
      await sleep(delay, signal);
    }
  }
}

/** A running gateway. */
export class Gateway {
  private readonly stopper = new AbortController();
  private readonly typing: TypingIndicator;
  private readonly ingress: TelegramIngress;
  private readonly egress: TetherEgress;
  private running: Promise<void> | undefined;

  constructor(
    config: GatewayConfig,
    telegram: TelegramApi,
    aegis: AegisTetherClient,
    private readonly log: GatewayLog,
    timing: GatewayTiming = DEFAULT_TIMING,
  ) {
    const state = GatewayState.load(config.statePath, config.instance);
    this.typing = new TypingIndicator(
      (chat) => telegram.sendChatAction(chat, "typing"),
      (chat, err) => log.warn(`chat ${chat}: sendChatAction failed: ${describeError(err)}`),
      timing.typing,
    );
    this.ingress = new TelegramIngress({ config, telegram, aegis, state, typing: this.typing, log });
    this.egress = new TetherEgress({ config, aegis, api: telegram, state, typing: this.typing, log, throttleMs: timing.throttleMs });
  }

  /** Start both loops; resolves when they end (after {@link stop}). */
  start(): Promise<void> {
    const signal = this.stopper.signal;
    this.running ??= Promise.all([this.ingress.run(signal), this.egress.run(signal)]).then(() => undefined);
    return this.running;
  }

  /** Stop polling and following, let final renders finish (bounded), stop typing. */
  async stop(graceMs = 3000): Promise<void> {
    this.stopper.abort();
    await this.running;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const grace = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.log.warn(`final edits still pending after ${graceMs} ms; exiting without them (they resume from the saved state next start)`);
        resolve();
      }, graceMs);
    });
    await Promise.race([this.egress.settled(), grace]);
    clearTimeout(timer);
    this.typing.stopAll();
  }
}

/** Build the Telegram client for a token (the token is registered for redaction first). */
export function telegramFor(config: GatewayConfig, token: string, log: GatewayLog): TelegramApi {
  registerSecret(token);
  return new TelegramApi({
    token,
    baseUrl: config.telegramApiBase,
    onRetry: (method, err, delay) => log.warn(`${describeError(err)}; retrying ${method} in ${delay} ms`),
  });
}

/** Check the token with `getMe`; returns the bot's @username. */
export async function checkBot(telegram: TelegramApi): Promise<string> {
  try {
    const me = await telegram.getMe();
    return me.username ? `@${me.username}` : String(me.id);
  } catch (err) {
    if (err instanceof TelegramError && (err.errorCode === 401 || err.errorCode === 404)) {
      throw new GatewayStartError(`Telegram rejected the bot token (${err.errorCode} ${err.description})`, "check the token from @BotFather and store it again: aegis secret set TELEGRAM_BOT_TOKEN ...");
    }
    throw err;
  }
}

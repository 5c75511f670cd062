/**
 * @module gateway/log
 * The gateway's log on stderr (`aegis up` captures it into the kit daemon's
 * log). Every line passes through a redactor that replaces registered secrets
 * (the bot token) with `<redacted>`, so an error message that happens to
 * carry a URL or token never leaks it.
 */

/** A leveled logger. */
export interface GatewayLog {
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

const secrets = new Set<string>();

/** Register a value that must never appear in logs or error messages. */
export function registerSecret(value: string): void {
  if (value.length >= 6) secrets.add(value);
}

/** Replace every registered secret in `text`. */
export function redact(text: string): string {
  let out = text;
  for (const s of secrets) out = out.split(s).join("<redacted>");
  return out;
}

/** Message of any thrown value, redacted. */
export function describeError(err: unknown): string {
  return redact(err instanceof Error ? err.message : String(err));
}

/** A logger writing redacted lines to a sink (default stderr). */
export function createLog(sink: (line: string) => void = (l) => process.stderr.write(l)): GatewayLog {
  const write = (prefix: string, msg: string) => sink(`aegis-gateway: ${prefix}${redact(msg)}\n`);
  return {
    info: (msg) => write("", msg),
    warn: (msg) => write("warning: ", msg),
    error: (msg) => write("error: ", msg),
  };
}

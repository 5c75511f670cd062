/**
 * @module guest/agent/log
 * The agent's diagnostic log: one line per event on stderr, prefixed with
 * `aegis-agent:` (stdout carries only the spec's start lines). Callers pass
 * ids and sizes, never API keys or message text.
 */

/** A minimal leveled logger. */
export interface AgentLog {
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

/** The stderr logger used by the agent process. */
export const stderrLog: AgentLog = {
  info: (msg) => process.stderr.write(`aegis-agent: ${msg}\n`),
  warn: (msg) => process.stderr.write(`aegis-agent: warning: ${msg}\n`),
  error: (msg) => process.stderr.write(`aegis-agent: error: ${msg}\n`),
};

/** Message of any thrown value. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * @module guest/agent/sessions
 * Conversation history as JSONL, one file per session:
 * `<dir>/<channel>_<id>.jsonl`, one turn a line,
 * `{"role":"user","content":"...","ts":"..."}`. A session is read from disk
 * the first time it is used after a (re)start and cached in memory
 * afterwards; each new turn is appended to the file before it is used, so a
 * VM stop loses nothing that was answered.
 */
import { appendFile, mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import type { TetherSession } from "../../src/api/schema/tether.ts";
import type { AgentLog } from "./log.ts";

/** One stored turn. */
export const Turn = z.object({ role: z.enum(["user", "assistant"]), content: z.string(), ts: z.string() });
export type Turn = z.infer<typeof Turn>;

/**
 * File-name-safe form of a channel or id: letters, digits, `.`, `-` stay;
 * everything else (including `_`, the separator, and `/`) becomes `%XX`.
 */
export function safeName(part: string): string {
  return Array.from(new TextEncoder().encode(part), (b) =>
    (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b === 0x2e || b === 0x2d
      ? String.fromCharCode(b)
      : `%${b.toString(16).toUpperCase().padStart(2, "0")}`,
  ).join("");
}

/** Parse a JSONL history; malformed lines (a torn last write) are reported through `onBad` and skipped. */
export function parseTurns(text: string, onBad: (lineNo: number, reason: string) => void): Turn[] {
  const turns: Turn[] = [];
  const lines = text.split("\n");
  lines.forEach((line, i) => {
    if (line.trim() === "") return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      onBad(i + 1, (err as Error).message);
      return;
    }
    const r = Turn.safeParse(value);
    if (r.success) turns.push(r.data);
    else onBad(i + 1, r.error.issues[0]?.message ?? "not a turn");
  });
  return turns;
}

/** JSONL session files under one directory, with an in-memory cache of the recent turns. */
export class SessionStore {
  private readonly cache = new Map<string, Turn[]>();

  /**
   * @param dir directory of the session files (created on first write)
   * @param keep how many recent turns to keep in memory per session (at least the context window)
   */
  constructor(
    readonly dir: string,
    private readonly keep: number,
    private readonly log: AgentLog,
  ) {}

  /** The file of a session. */
  fileFor(session: TetherSession): string {
    return join(this.dir, `${safeName(session.channel)}_${safeName(session.id)}.jsonl`);
  }

  /** Recent turns of a session, oldest first (loaded from disk on first use). */
  async load(session: TetherSession): Promise<Turn[]> {
    const file = this.fileFor(session);
    const cached = this.cache.get(file);
    if (cached) return cached;
    let text = "";
    try {
      text = await readFile(file, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    const turns = parseTurns(text, (n, why) => this.log.warn(`${file}:${n}: skipping unreadable turn (${why})`)).slice(-this.keep);
    if (!this.cache.has(file)) this.cache.set(file, turns);
    return this.cache.get(file) as Turn[];
  }

  /** Append a turn to the file and the cache. */
  async append(session: TetherSession, turn: Turn): Promise<void> {
    const turns = await this.load(session);
    await mkdir(this.dir, { recursive: true });
    await appendFile(this.fileFor(session), `${JSON.stringify(turn)}\n`, "utf8");
    turns.push(turn);
    if (turns.length > this.keep) turns.splice(0, turns.length - this.keep);
  }
}

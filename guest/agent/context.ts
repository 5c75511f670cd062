/**
 * @module guest/agent/context
 * Context assembly (spec "sliding window"): the system prompt plus the most
 * recent turns that fit both a turn count and a character budget. Turns are
 * never split, the window is contiguous (it stops at the first turn that does
 * not fit rather than skipping to older, smaller ones), and the newest turn
 * (the user message being answered) is always included, even alone over budget.
 * The system prompt is not counted against the budget.
 */
import type { ChatMessage } from "./providers/types.ts";

/** Window limits. */
export interface WindowLimits {
  maxTurns: number;
  maxChars: number;
}

/** The newest turns within the limits, oldest first. */
export function contextWindow<T extends ChatMessage>(turns: readonly T[], limits: WindowLimits): T[] {
  const out: T[] = [];
  let chars = 0;
  for (let i = turns.length - 1; i >= 0; i--) {
    const t = turns[i] as T;
    const newest = out.length === 0;
    if (!newest && (out.length >= limits.maxTurns || chars + t.content.length > limits.maxChars)) break;
    out.push(t);
    chars += t.content.length;
  }
  return out.reverse();
}

/** `[name]: text` with the speaker's name, else username, else just the text. */
export function prefixed(text: string, user?: { name?: string; username?: string }): string {
  const who = user?.name?.trim() || user?.username?.trim();
  return who ? `[${who}]: ${text}` : text;
}

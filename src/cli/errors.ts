/**
 * @module cli/errors
 * Errors the CLI raises itself, and the one mapper from any error to an exit
 * code and a message on stderr.
 */
import { isAppError } from "../api/errors.ts";

/** Bad command-line usage: exit code 2, no stack, optional usage hint. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** An error that is only advice (what happened and what to do); printed without a stack. */
export class ActionableError extends Error {
  override name = "ActionableError";
  constructor(
    message: string,
    readonly hint?: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

/** Map any thrown value to the exit code and the lines to print on stderr. */
export function describeError(err: unknown): { exitCode: number; lines: string[] } {
  if (err instanceof UsageError) return { exitCode: 2, lines: [`error: ${err.message}`] };
  if (err instanceof ActionableError) {
    return { exitCode: err.exitCode, lines: [err.message, ...(err.hint ? [`hint: ${err.hint}`] : [])] };
  }
  if (isAppError(err)) {
    return { exitCode: 1, lines: [`error: ${err.message}`, ...(err.hint ? [`hint: ${err.hint}`] : [])] };
  }
  const e = err instanceof Error ? err : new Error(String(err));
  return { exitCode: 1, lines: [`error: ${e.message}`] };
}

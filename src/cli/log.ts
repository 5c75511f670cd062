/**
 * @module cli/log
 * The CLI's human-facing output. consola would send info/success to stdout
 * (STYLE.md), so it is pointed at stderr: stdout carries data only.
 */
import { createConsola } from "consola";

/** Logger for human messages (stderr). `log.log(msg)` prints the message as-is. */
export const log = createConsola({
  stdout: process.stderr,
  stderr: process.stderr,
  formatOptions: { date: false, colors: false, compact: true },
});

/** Print a human message line on stderr, exactly as given. */
export function say(message: string): void {
  process.stderr.write(`${message}\n`);
}

/**
 * @module cli/argv
 * Strict argument parsing for citty command definitions. citty itself accepts
 * unknown flags silently, keeps only the last value of a repeated flag and
 * intercepts `--help` even after `--` (STYLE.md, "CLI library traps"), so we
 * parse here and hand citty only what it is good at: definitions and usage text.
 *
 * Rules: tokens after the first `--` are passed through untouched; an unknown
 * flag is an error with a "did you mean" suggestion; a string flag needs a
 * value; a flag marked `repeatable: true` collects every value, any other flag
 * given twice is an error; surplus positionals are an error.
 */
import type { ArgDef, ArgsDef } from "citty";

/** citty argument definitions plus our `repeatable` marker for string flags. */
export type AegisArgsDef = Record<string, ArgDef & { repeatable?: boolean }>;
import { UsageError } from "./errors.ts";

/** Result of parsing one command's arguments. */
export interface ParsedCommandLine {
  /** Flag and positional values by name (last value for repeatable flags). */
  values: Record<string, string | boolean | undefined>;
  /** Every value of each string flag, in order (what repeatable flags use). */
  multi: Record<string, string[]>;
  /** Every string flag value in command-line order across flags (`--allow`/`--deny` interleave). */
  ordered: { name: string; value: string }[];
  /** Everything after the first `--`, untouched. */
  rest: string[];
  /** True when `--` was present (even with nothing after it). */
  hasRest: boolean;
}

/** Split argv at the first `--`. */
export function splitAtDoubleDash(argv: string[]): { head: string[]; rest: string[]; hasRest: boolean } {
  const i = argv.indexOf("--");
  return i < 0 ? { head: argv, rest: [], hasRest: false } : { head: argv.slice(0, i), rest: argv.slice(i + 1), hasRest: true };
}

/** Levenshtein distance, for flag suggestions. */
export function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

/** The closest candidate within a small edit distance, if any. */
export function suggest(input: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(input, c);
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return bestDistance <= Math.max(2, Math.floor(input.length / 3)) ? best : undefined;
}

type FlagInfo = { name: string; type: "string" | "boolean" | "enum"; repeatable: boolean; options?: string[] };

function flagTable(defs: ArgsDef): Map<string, FlagInfo> {
  const table = new Map<string, FlagInfo>();
  for (const [name, def] of Object.entries(defs)) {
    if (def.type === "positional") continue;
    const info: FlagInfo = {
      name,
      type: def.type === "boolean" ? "boolean" : def.type === "enum" ? "enum" : "string",
      repeatable: (def as { repeatable?: boolean }).repeatable === true,
      options: "options" in def ? def.options : undefined,
    };
    table.set(name, info);
    const alias = (def as { alias?: string | string[] }).alias;
    const aliases = alias === undefined ? [] : Array.isArray(alias) ? alias : [alias];
    for (const a of aliases) table.set(a, info);
  }
  return table;
}

/** Parse argv for one (leaf) command definition. Throws {@link UsageError} on bad input. */
export function parseCommandLine(argv: string[], defs: ArgsDef): ParsedCommandLine {
  const { head, rest, hasRest } = splitAtDoubleDash(argv);
  const flags = flagTable(defs);
  const values: ParsedCommandLine["values"] = {};
  const multi: ParsedCommandLine["multi"] = {};
  const ordered: ParsedCommandLine["ordered"] = [];
  const positionals: string[] = [];
  for (let i = 0; i < head.length; i++) {
    const token = head[i]!;
    if (!token.startsWith("-") || token === "-") {
      positionals.push(token);
      continue;
    }
    const body = token.replace(/^--?/, "");
    // Bundled short booleans, as Docker users type them: `-it` is `-i -t`.
    const bundle = !token.startsWith("--") && body.length > 1 && !flags.has(body) ? [...body].map((ch) => flags.get(ch)) : null;
    if (bundle && bundle.every((f) => f?.type === "boolean")) {
      for (const f of bundle) values[f!.name] = true;
      continue;
    }
    const eq = body.indexOf("=");
    let name = eq >= 0 ? body.slice(0, eq) : body;
    let inline = eq >= 0 ? body.slice(eq + 1) : undefined;
    let negated = false;
    if (!flags.has(name) && name.startsWith("no-") && flags.get(name.slice(3))?.type === "boolean") {
      name = name.slice(3);
      negated = true;
    }
    const info = flags.get(name);
    if (!info) {
      const candidates = [...new Set([...flags.values()].map((f) => f.name))];
      const near = suggest(name, candidates);
      throw new UsageError(`unknown flag ${token}${near ? ` (did you mean --${near}?)` : ""}`);
    }
    if (info.type === "boolean") {
      if (inline !== undefined && !["true", "false"].includes(inline)) {
        throw new UsageError(`flag --${info.name} takes no value (got "${inline}")`);
      }
      values[info.name] = negated ? false : inline !== "false";
      continue;
    }
    if (inline === undefined) {
      const next = head[i + 1];
      if (next === undefined) throw new UsageError(`flag --${info.name} needs a value`);
      inline = next;
      i++;
    }
    if (info.options && !info.options.includes(inline)) {
      throw new UsageError(`invalid value "${inline}" for --${info.name}; expected one of: ${info.options.join(", ")}`);
    }
    const all = (multi[info.name] ??= []);
    if (all.length > 0 && !info.repeatable) throw new UsageError(`flag --${info.name} given more than once`);
    all.push(inline);
    ordered.push({ name: info.name, value: inline });
    values[info.name] = inline;
  }
  for (const [name, def] of Object.entries(defs)) {
    if (def.type === "positional") {
      const next = positionals.shift();
      if (next !== undefined) values[name] = next;
      else if (def.required !== false && def.default === undefined) {
        throw new UsageError(`missing required argument ${def.valueHint ?? name.toUpperCase()}`);
      } else values[name] = def.default;
    } else if (values[name] === undefined) {
      if (def.required) throw new UsageError(`missing required flag --${name}`);
      if (def.default !== undefined) values[name] = def.default;
    }
  }
  if (positionals.length > 0) {
    throw new UsageError(`unexpected argument "${positionals[0]}"${hasRest ? "" : " (put the guest command after --)"}`);
  }
  return { values, multi, rest, hasRest, ordered };
}

/**
 * @module mcp/install/config-file
 * Adding and removing one server entry in a client's JSON config file
 * without disturbing anything else in it: the file is parsed (a file that
 * is not a JSON object, or whose server map is not an object, is refused
 * and left untouched), only our key changes, and the result replaces the
 * file atomically (temporary file + rename, same permissions), so a crash
 * never leaves half a file. A file with comments (JSONC) is refused with a
 * hint rather than rewritten without them.
 */
import { chmodSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { ActionableError } from "../../cli/errors.ts";
import type { ConfigTarget } from "./targets.ts";

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The parsed file, or null when it does not exist. */
function load(path: string): Json | null {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
  if (text.trim() === "") return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ActionableError(`${path} is not valid JSON (${(err as Error).message}); it was left unchanged`, "fix the file (comments are not supported), or add the entry by hand: 'aegis mcp install --client json' prints it");
  }
  if (!isObject(parsed)) throw new ActionableError(`${path} does not hold a JSON object; it was left unchanged`, "'aegis mcp install --client json' prints the entry to add by hand");
  return parsed;
}

function save(path: string, value: Json): void {
  mkdirSync(dirname(path), { recursive: true });
  let mode = 0o644;
  try {
    mode = statSync(path).mode & 0o777;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  const tmp = `${path}.aegis-${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(value, null, 2)}\n`, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

function serverMap(target: ConfigTarget, config: Json): Json {
  const map = config[target.key];
  if (map === undefined) return {};
  if (!isObject(map)) throw new ActionableError(`"${target.key}" in ${target.path} is not an object; the file was left unchanged`, `make "${target.key}" an object of server entries`);
  return map;
}

/** Set `name` to `entry` in the file; what changed. */
export function addServer(target: ConfigTarget, name: string, entry: Json): "added" | "updated" | "unchanged" {
  const config = load(target.path) ?? {};
  const map = serverMap(target, config);
  const before = map[name];
  if (before !== undefined && JSON.stringify(before) === JSON.stringify(entry)) return "unchanged";
  save(target.path, { ...config, [target.key]: { ...map, [name]: entry } });
  return before === undefined ? "added" : "updated";
}

/** Remove `name` from the file (other entries stay); whether it was there. */
export function removeServer(target: ConfigTarget, name: string): "removed" | "absent" {
  const config = load(target.path);
  if (config === null) return "absent";
  const map = serverMap(target, config);
  if (!(name in map)) return "absent";
  const { [name]: _ours, ...others } = map;
  save(target.path, { ...config, [target.key]: others });
  return "removed";
}

/**
 * @module cli/commands/kit/_manifest
 * Reading a kit manifest file (YAML or JSON; JSON is valid YAML 1.2) and
 * validating it with the shared schema before anything is sent.
 */
import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { formatIssues } from "../../../api/issues.ts";
import { KitManifest } from "../../../api/schema/kits.ts";
import { ActionableError } from "../../errors.ts";

/** Load and validate a manifest; errors name the file and the field. */
export function loadKitManifest(path: string): KitManifest {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ActionableError(`error: cannot read kit manifest ${path}: ${code === "ENOENT" ? "no such file" : (err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (err) {
    throw new ActionableError(`error: kit manifest ${path} is not valid YAML or JSON: ${(err as Error).message.split("\n")[0]}`);
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    throw new ActionableError(`error: kit manifest ${path} must be a mapping with name, version and image`);
  }
  const result = KitManifest.safeParse(doc);
  if (!result.success) {
    throw new ActionableError(`error: invalid kit manifest ${path}: ${formatIssues(result.error.issues)}`, "see kits/agent.yaml for an example");
  }
  return result.data;
}

/**
 * @module cli/commands/secret/list-workspace
 * `aegis secret list-workspace`.
 */
import { defineCommand } from "citty";
import { jsonArgs } from "../_shared.ts";
import { listSecrets } from "./list.ts";

export default defineCommand({
  meta: { name: "list-workspace", description: "List workspace-wide secret names" },
  args: { ...jsonArgs },
  run: ({ args }) => listSecrets(undefined, args.json),
});

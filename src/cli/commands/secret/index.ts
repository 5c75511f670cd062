/**
 * @module cli/commands/secret
 * `aegis secret ...`: workspace and app secrets (DESIGN.md section 12).
 */
import { defineCommand } from "citty";

export default defineCommand({
  meta: { name: "secret", description: "Manage app and workspace secrets (values are never shown)" },
  subCommands: {
    set: () => import("./set.ts").then((m) => m.default),
    list: () => import("./list.ts").then((m) => m.default),
    delete: () => import("./delete.ts").then((m) => m.default),
    "set-workspace": () => import("./set-workspace.ts").then((m) => m.default),
    "list-workspace": () => import("./list-workspace.ts").then((m) => m.default),
  },
});

/**
 * @module cli/commands/kit
 * `aegis kit ...`: agent runtime presets installed from manifests.
 */
import { defineCommand } from "citty";

export default defineCommand({
  meta: { name: "kit", description: "Manage kits (install from YAML or JSON manifests)" },
  subCommands: {
    install: () => import("./install.ts").then((m) => m.default),
    list: () => import("./list.ts").then((m) => m.default),
    info: () => import("./info.ts").then((m) => m.default),
    uninstall: () => import("./uninstall.ts").then((m) => m.default),
  },
});

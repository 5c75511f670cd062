/**
 * @module cli/commands/image
 * `aegis image ...`: pulled OCI images and their cache.
 */
import { defineCommand } from "citty";

export default defineCommand({
  meta: { name: "image", description: "Manage OCI images (pull, list, inspect, rm, gc)" },
  subCommands: {
    pull: () => import("./pull.ts").then((m) => m.default),
    list: () => import("./list.ts").then((m) => m.default),
    inspect: () => import("./inspect.ts").then((m) => m.default),
    rm: () => import("./rm.ts").then((m) => m.default),
    gc: () => import("./gc.ts").then((m) => m.default),
  },
});

/**
 * @module cli/commands/app
 * `aegis app ...`: packaged, publishable workloads.
 */
import { defineCommand } from "citty";

export default defineCommand({
  meta: { name: "app", description: "Manage apps (name or id accepted everywhere)" },
  subCommands: {
    create: () => import("./create.ts").then((m) => m.default),
    list: () => import("./list.ts").then((m) => m.default),
    info: () => import("./info.ts").then((m) => m.default),
    delete: () => import("./delete.ts").then((m) => m.default),
    publish: () => import("./publish.ts").then((m) => m.default),
    serve: () => import("./serve.ts").then((m) => m.default),
  },
});

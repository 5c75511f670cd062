/**
 * @module cli/commands/instance
 * `aegis instance ...`: long-lived VMs.
 */
import { defineCommand } from "citty";

export default defineCommand({
  meta: { name: "instance", description: "Manage long-lived instances (id or name accepted everywhere)" },
  subCommands: {
    start: () => import("./start.ts").then((m) => m.default),
    list: () => import("./list.ts").then((m) => m.default),
    info: () => import("./info.ts").then((m) => m.default),
    pause: () => import("./pause.ts").then((m) => m.default),
    resume: () => import("./resume.ts").then((m) => m.default),
    stop: () => import("./stop.ts").then((m) => m.default),
    delete: () => import("./delete.ts").then((m) => m.default),
  },
});

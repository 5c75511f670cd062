/**
 * @module cli/commands
 * The root command: every top-level verb, lazily loaded.
 */
import { defineCommand } from "citty";
import { VERSION } from "../../api/version.ts";

/** The `aegis` root command (no `run`: it only groups). */
export const root = defineCommand({
  meta: { name: "aegis", version: VERSION, description: "Local microVM runtime for AI agents" },
  subCommands: {
    up: () => import("./up.ts").then((m) => m.default),
    down: () => import("./down.ts").then((m) => m.default),
    status: () => import("./status.ts").then((m) => m.default),
    doctor: () => import("./doctor.ts").then((m) => m.default),
    setup: () => import("./setup.ts").then((m) => m.default),
    app: () => import("./app/index.ts").then((m) => m.default),
    secret: () => import("./secret/index.ts").then((m) => m.default),
    kit: () => import("./kit/index.ts").then((m) => m.default),
    run: () => import("./run.ts").then((m) => m.default),
    image: () => import("./image/index.ts").then((m) => m.default),
    instance: () => import("./instance/index.ts").then((m) => m.default),
    exec: () => import("./exec.ts").then((m) => m.default),
    cp: () => import("./cp.ts").then((m) => m.default),
    logs: () => import("./logs.ts").then((m) => m.default),
    mcp: () => import("./mcp/index.ts").then((m) => m.default),
    e2b: () => import("./e2b/index.ts").then((m) => m.default),
  },
});

/**
 * @module cli/commands/e2b
 * `aegis e2b ...`: the E2B-compatible API of aegisd (daemon/e2b/).
 */
import { defineCommand } from "citty";

export default defineCommand({
  meta: { name: "e2b", description: "E2B SDK compatibility: 'eval \"$(aegis e2b env)\"' points the e2b SDK at this aegisd" },
  subCommands: {
    env: () => import("./env.ts").then((m) => m.default),
  },
});

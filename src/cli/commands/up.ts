/**
 * @module cli/commands/up
 * `aegis up`: start aegisd (idempotent).
 */
import { defineCommand } from "citty";
import { startDaemon } from "../../daemon/control.ts";
import { statePaths } from "../../paths.ts";
import { say } from "../log.ts";

export default defineCommand({
  meta: { name: "up", description: "Start the aegisd daemon" },
  args: {},
  async run() {
    const { pid, already } = await startDaemon(statePaths());
    say(already ? `aegisd is already running (pid ${pid})` : `aegisd started (pid ${pid})`);
  },
});

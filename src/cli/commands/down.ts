/**
 * @module cli/commands/down
 * `aegis down`: stop aegisd (SIGTERM, wait up to 5 s; idempotent).
 */
import { defineCommand } from "citty";
import { stopDaemon } from "../../control/daemon-process.ts";
import { statePaths } from "../../paths.ts";
import { say } from "../log.ts";

export default defineCommand({
  meta: { name: "down", description: "Stop the aegisd daemon" },
  args: {},
  async run() {
    const pid = await stopDaemon(statePaths(), (p) => say(`aegisd stopping (pid ${p})`));
    say(pid === null ? "aegisd is not running" : "aegisd stopped");
  },
});

/**
 * @module cli/commands/up
 * `aegis up [--no-daemons]`: start aegisd (idempotent), then report the kit
 * daemons it supervises (spec: agent-kit.md, "Start the gateway").
 *
 * The wait for aegisd's pid file: the spec's 2 s, then one progress line on
 * stderr (`aegis: aegisd is still starting...`) and on up to 15 s in all
 * (control/daemon-process.ts `START_MAX_WAIT_MS`, which says why) before it
 * fails with the daemon log's tail.
 */
import { defineCommand } from "citty";
import { homedir } from "node:os";
import { startDaemon } from "../../control/daemon-process.ts";
import { statePaths } from "../../paths.ts";
import { say } from "../log.ts";
import { client } from "./_shared.ts";

/** `~/...` for paths under the home directory, as the spec prints them. */
function tilde(path: string): string {
  const home = homedir();
  return path.startsWith(`${home}/`) ? `~${path.slice(home.length)}` : path;
}

export default defineCommand({
  meta: { name: "up", description: "Start the aegisd daemon (and the kit daemons whose config exists)" },
  args: { "no-daemons": { type: "boolean", description: "Do not start kit daemons such as aegis-gateway" } },
  async run({ args }) {
    const { pid, already } = await startDaemon(statePaths(), {
      noDaemons: args["no-daemons"] === true,
      onSlowStart: () => say("aegis: aegisd is still starting..."),
    });
    say(already ? `aegisd is already running (pid ${pid})` : `aegisd started (pid ${pid})`);
    const status = await client().status();
    for (const d of status.daemons) {
      if (d.state === "running") say(`${d.name}: started (${d.kit} kit)`);
      else if (d.state === "no-config") say(`${d.name}: no config (create ${tilde(d.config ?? "its config file")} to enable)`);
      else if (d.state === "disabled") say(`${d.name}: not started (--no-daemons)`);
      else say(`${d.name}: ${d.state}${d.last_exit !== null ? ` (last exit code ${d.last_exit})` : ""}; see ${tilde(`${statePaths().data}/${d.name}.log`)}`);
    }
  },
});

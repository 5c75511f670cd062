/**
 * @module cli/commands/down
 * `aegis down [--keep-vms]`: stop aegisd (wait up to 5 s; idempotent). Its
 * VMs stop with it (tasks fail, instances stop and wake on the next
 * request); with `--keep-vms` they keep running, and the next `aegis up`
 * re-adopts them: tasks stream on, instances keep serving (live restore).
 */
import { defineCommand } from "citty";
import { stopDaemon } from "../../control/daemon-process.ts";
import { statePaths } from "../../paths.ts";
import { say } from "../log.ts";

export default defineCommand({
  meta: { name: "down", description: "Stop the aegisd daemon (and its VMs, unless --keep-vms)" },
  args: {
    "keep-vms": { type: "boolean", description: "Leave running tasks and instances running for the next 'aegis up' (an upgrade)" },
  },
  async run(ctx) {
    const keepVms = ctx.args["keep-vms"] === true;
    const pid = await stopDaemon(statePaths(), (p) => say(`aegisd stopping (pid ${p})${keepVms ? "; its VMs keep running" : ""}`), { keepVms });
    say(pid === null ? "aegisd is not running" : "aegisd stopped");
  },
});

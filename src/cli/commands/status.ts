/**
 * @module cli/commands/status
 * `aegis status`: whether aegisd runs, and its backend.
 */
import { defineCommand } from "citty";
import { DaemonNotRunning } from "../../api/client.ts";
import { out, printJson } from "../output.ts";
import { client, jsonArgs } from "./_shared.ts";

export default defineCommand({
  meta: { name: "status", description: "Show daemon status" },
  args: { ...jsonArgs },
  async run({ args }) {
    try {
      const status = await client().status();
      if (args.json) printJson(status);
      else {
        out("aegisd: running");
        out(`backend: ${status.backend}`);
        for (const d of status.daemons) {
          const detail = d.state === "running" ? `running (pid ${d.pid})` : d.state === "no-config" ? `no config (${d.config})` : d.state;
          out(`${d.name}: ${detail}${d.restarts > 0 ? `, ${d.restarts} restart${d.restarts > 1 ? "s" : ""}${d.last_exit !== null ? `, last exit code ${d.last_exit}` : ""}` : ""}`);
        }
      }
      return 0;
    } catch (err) {
      if (!(err instanceof DaemonNotRunning)) throw err;
      if (args.json) printJson({ status: "stopped" });
      else out("aegisd: not running");
      return 1;
    }
  },
});

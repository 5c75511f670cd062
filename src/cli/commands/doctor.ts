/**
 * @module cli/commands/doctor
 * `aegis doctor`: diagnose the host, then (when aegisd runs) its backend,
 * capabilities and installed kits, in the spec's layout.
 */
import { defineCommand } from "citty";
import { DaemonNotRunning } from "../../api/client.ts";
import type { Status } from "../../api/schema/status.ts";
import { hostChecks } from "../../doctor/checks.ts";
import { out, printJson } from "../output.ts";
import { client, jsonArgs } from "./_shared.ts";

const yesNo = (b: boolean) => (b ? "yes" : "no");

export default defineCommand({
  meta: { name: "doctor", description: "Diagnose the local environment" },
  args: { ...jsonArgs },
  async run({ args }) {
    const checks = hostChecks();
    let status: Status | null = null;
    try {
      status = await client().status();
    } catch (err) {
      if (!(err instanceof DaemonNotRunning)) throw err;
    }
    if (args.json) {
      printJson({ checks, daemon: status ?? { status: "stopped" } });
      return;
    }
    out("Aegis Doctor");
    out("============");
    out();
    for (const c of checks) out(`${`${c.name}:`.padEnd(11)}${c.detail}`);
    out();
    out(`${"aegisd:".padEnd(11)}${status ? "running" : "not running (start it with 'aegis up')"}`);
    if (!status) return;
    out();
    out(`Backend:     ${status.backend} (${status.backend_reason})`);
    out("Capabilities:");
    out(`  Pause/Resume:          ${yesNo(status.capabilities.pause_resume)}`);
    out(`  Memory Snapshots:      ${yesNo(status.capabilities.memory_snapshots)}`);
    out(`  Boot from disk layers: ${yesNo(status.capabilities.boot_from_disk_layers)}`);
    out(`Installed kits: ${status.kits_installed}`);
  },
});

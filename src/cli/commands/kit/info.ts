/**
 * @module cli/commands/kit/info
 * `aegis kit info KIT`: Name, Version, Description, Image, Installed,
 * Status, Command, Network (the instances' egress policy, when the manifest sets one), Daemons.
 */
import { defineCommand } from "citty";
import { out, printJson } from "../../output.ts";
import { client, jsonArgs } from "../_shared.ts";
import { describePolicy } from "../../../api/network-policy.ts";

export default defineCommand({
  meta: { name: "info", description: "Show an installed kit" },
  args: { name: { type: "positional", valueHint: "KIT_NAME", required: true, description: "Kit name" }, ...jsonArgs },
  async run({ args }) {
    const kit = await client().getKit(args.name);
    if (args.json) return printJson(kit);
    const m = kit.manifest;
    out(`Name:        ${m.name}`);
    out(`Version:     ${m.version}`);
    if (m.description) out(`Description: ${m.description}`);
    out(`Image:       ${m.image}`);
    out(`Installed:   ${kit.installed_at.replace(/\.\d{3}Z$/, "Z")}`);
    out(`Status:      ${kit.status}`);
    if (m.instance?.command) out(`Command:     ${m.instance.command.join(" ")}`);
    if (m.instance?.network) describePolicy(m.instance.network).forEach((line, n) => out(`${n === 0 ? "Network:     " : "             "}${line}`));
    for (const d of m.daemons ?? []) out(`Daemon:      ${d.name}${d.requires_config ? ` (needs ${d.requires_config})` : ""}`);
  },
});

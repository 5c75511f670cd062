/**
 * @module cli/commands/app/info
 * `aegis app info APP`: Name, ID, Image, Command, Ports, Network (the
 * egress policy, one rule a line), Releases (newest first).
 */
import { defineCommand } from "citty";
import { out, printJson } from "../../output.ts";
import { client, jsonArgs } from "../_shared.ts";
import { describePolicy } from "../../../api/network-policy.ts";

/** Quote an argv element for display only when it needs it. */
function shellQuote(arg: string): string {
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`;
}

export default defineCommand({
  meta: { name: "info", description: "Show an app and its releases" },
  args: { app: { type: "positional", valueHint: "APP", required: true, description: "App name or id" }, ...jsonArgs },
  async run({ args }) {
    const app = await client().getApp(args.app);
    if (args.json) return printJson(app);
    out(`Name:    ${app.name}`);
    out(`ID:      ${app.id}`);
    out(`Image:   ${app.image}`);
    out(`Command: ${app.command.length > 0 ? app.command.map(shellQuote).join(" ") : "(the image's ENTRYPOINT and CMD)"}`);
    out(`Ports:   ${app.expose.length > 0 ? app.expose.join(", ") : "(none)"}`);
    describePolicy(app.network).forEach((line, n) => out(`${n === 0 ? "Network: " : "         "}${line}`));
    out();
    out(`Releases (${app.releases.length}):`);
    for (const r of app.releases) out(`  ${r.id}${r.label ? ` (${r.label})` : ""}`);
  },
});

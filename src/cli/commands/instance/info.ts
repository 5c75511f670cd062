/**
 * @module cli/commands/instance/info
 * `aegis instance info NAME`.
 */
import { describePolicy } from "../../../api/network-policy.ts";
import { defineCommand } from "citty";
import { out, printJson } from "../../output.ts";
import { client, jsonArgs } from "../_shared.ts";

export default defineCommand({
  meta: { name: "info", description: "Show an instance" },
  args: { name: { type: "positional", required: true, valueHint: "NAME", description: "Instance name or id" }, ...jsonArgs },
  async run({ args }) {
    const i = await client().getInstance(args.name);
    if (args.json) return printJson(i);
    const row = (k: string, v: string) => out(`${`${k}:`.padEnd(13)}${v}`);
    row("Name", i.handle);
    row("ID", i.id);
    row("State", i.state);
    if (i.parent_id) row("Parent", i.parent_id);
    row("Image", i.image ?? "(base rootfs)");
    if (i.kit) row("Kit", i.kit);
    row("Command", i.command.join(" "));
    if (i.workdir) row("Workdir", i.workdir);
    if (i.user) row("User", i.user);
    row("Ports", i.expose.length ? i.expose.map((e) => (e.public_port ? `${e.public_port}:${e.guest_port}` : String(e.guest_port))).join(", ") : "(none)");
    describePolicy(i.network).forEach((line, n) => (n === 0 ? row("Network", line) : out(`${"".padEnd(13)}${line}`)));
    row("Secrets", i.secrets.length ? i.secrets.join(", ") : "(none)");
    if (i.workspace) row("Workspace", i.workspace);
    const caps = i.capabilities;
    if (caps.spawn) row("Spawn", `up to ${caps.max_children} children, depth ${caps.max_depth}, images ${caps.allowed_images.join(", ") || "(none)"}`);
    row("Memory", `${i.memory_mb} MB, ${i.vcpus} vCPU`);
    row("Idle policy", `pause after ${i.pause_after_s || "never"}${i.pause_after_s ? " s" : ""}, stop after ${i.stop_after_s || "never"}${i.stop_after_s ? " s more" : ""}`);
    row("Created", i.created_at);
    if (i.started_at) row("Started", i.started_at);
    if (i.exit_code !== null) row("Exit code", String(i.exit_code));
    if (i.error) row("Error", i.error);
  },
});

/**
 * @module cli/commands/instance/list
 * `aegis instance list`: NAME, ID, STATE, IMAGE, PORTS, and for E2B
 * sandboxes their template, lifetime end and metadata (E2B column).
 */
import { defineCommand } from "citty";
import { printJson, printTable } from "../../output.ts";
import { client, jsonArgs } from "../_shared.ts";

export default defineCommand({
  meta: { name: "list", description: "List instances" },
  args: { ...jsonArgs },
  async run({ args }) {
    const { instances } = await client().listInstances();
    if (args.json) return printJson(instances);
    printTable(
      [
        { title: "NAME", width: 21 },
        { title: "ID", width: 27 },
        { title: "STATE", width: 10 },
        { title: "IMAGE", width: 31 },
        { title: "PORTS", width: 11 },
        { title: "E2B", width: 0 },
      ],
      instances.map((i) => [
        i.handle,
        i.id,
        i.state,
        i.image ?? "(base)",
        i.expose.map((e) => (e.public_port ? `${e.public_port}:${e.guest_port}` : String(e.guest_port))).join(","),
        i.e2b ? [`template=${i.e2b.template}`, `end=${i.e2b.end_at}`, ...(i.e2b.auto_pause ? ["auto_pause"] : []), ...Object.entries(i.e2b.metadata).map(([k, v]) => `${k}=${v}`)].join(" ") : "",
      ]),
    );
  },
});

/**
 * @module cli/commands/setup
 * `aegis setup [--binary PATH] [--json]`: fetch the guest kernel and busybox
 * (apt, or a verified download from a Debian mirror: see
 * vmm/assets/debian-package) and build the guest assets under AEGIS_HOME.
 * Progress goes to stderr; `--json` prints the asset paths on stdout. Not in
 * the spec's command list; `aegis up` would build the same assets on first
 * use, this does it up front and visibly. `aegis __setup` is the old
 * spelling (always JSON).
 */
import { defineCommand } from "citty";
import { runSetup } from "../../vmm/assets/index.ts";
import { say } from "../log.ts";
import { printJson } from "../output.ts";
import { jsonArgs } from "./_shared.ts";

export default defineCommand({
  meta: { name: "setup", description: "Download the guest kernel and build the guest assets (kernel, initramfs, disks)" },
  args: {
    ...jsonArgs,
    binary: { type: "string", valueHint: "PATH", description: "Harness binary to put in the guest (default: this aegis)" },
  },
  async run({ args }) {
    const assets = await runSetup({ binary: args.binary, progress: (msg) => say(`setup: ${msg}`) });
    if (args.json) printJson(assets);
    else say(`guest assets ready: ${assets.hash} (kernel ${assets.kernelVersion}); next: aegis up`);
  },
});

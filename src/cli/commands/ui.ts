/**
 * @module cli/commands/ui
 * `aegis ui [--port P] [--no-open] [--json]`: start aegisd when needed, have
 * it serve the web UI on 127.0.0.1 (daemon/ui), print the URL on stdout and
 * open a browser when there is a display.
 *
 * The URL carries the UI token, and process arguments are world-readable,
 * so the browser is not given the URL itself: it opens a 0600 redirect file
 * under AEGIS_HOME/data (next to the token, so nothing new is exposed), as
 * Jupyter does. The URL is printed because the user asked for it.
 */
import { defineCommand } from "citty";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { InvalidRequest } from "../../api/errors.ts";
import { UiOpened } from "../../api/schema/ui.ts";
import { startDaemon } from "../../control/daemon-process.ts";
import { statePaths } from "../../paths.ts";
import { say } from "../log.ts";
import { out, printJson } from "../output.ts";
import { client, jsonArgs } from "./_shared.ts";

/** The port flag's value as a port number, or undefined when absent. */
export function parsePort(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const port = Number(raw);
  if (!/^\d+$/.test(raw) || port < 1 || port > 65535) throw new InvalidRequest(`--port ${raw} is not a port number (1-65535)`, "pass e.g. --port 8097");
  return port;
}

/** True when a browser can be shown: a graphical session (or macOS). */
export function hasDisplay(env = process.env): boolean {
  return process.platform === "darwin" || Boolean(env.DISPLAY) || Boolean(env.WAYLAND_DISPLAY);
}

function escapeAttr(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;");
}

/** Open `url` in the user's browser through a 0600 redirect file, so the token is not in any process's argv. */
async function openBrowser(url: string): Promise<void> {
  const file = join(statePaths().data, "ui-open.html");
  writeFileSync(file, `<!doctype html><meta http-equiv="refresh" content="0;url=${escapeAttr(url)}"><a href="${escapeAttr(url)}">Open the Aegis UI</a>\n`, { mode: 0o600 });
  const opener = process.platform === "darwin" ? "open" : "xdg-open";
  const bin = Bun.which(opener);
  if (!bin) {
    say(`no ${opener} found: open the URL above yourself`);
    return;
  }
  const proc = Bun.spawn([bin, `file://${file}`], { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
  const code = await proc.exited;
  if (code !== 0) say(`${opener} exited with code ${code}: open the URL above yourself`);
}

export default defineCommand({
  meta: { name: "ui", description: "Serve the web UI on 127.0.0.1 and open it in a browser" },
  args: {
    port: { type: "string", description: "Port on 127.0.0.1 (default: AEGIS_UI_PORT, else 8097)", valueHint: "P" },
    "no-open": { type: "boolean", description: "Print the URL but do not open a browser" },
    ...jsonArgs,
  },
  async run({ args }) {
    const port = parsePort(args.port);
    const { already, pid } = await startDaemon(statePaths(), { onSlowStart: () => say("aegis: aegisd is still starting...") });
    if (!already) say(`aegisd started (pid ${pid})`);
    const opened = await client().request(UiOpened, "POST", "/v1/ui", port === undefined ? {} : { port });
    if (args.json) printJson(opened);
    else out(opened.url);
    if (args["no-open"] !== true && hasDisplay()) await openBrowser(opened.url);
  },
});

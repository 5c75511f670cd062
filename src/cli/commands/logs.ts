/**
 * @module cli/commands/logs
 * `aegis logs ID [-f]`: a task's output (and, as instances land, an
 * instance's), stdout to stdout and stderr to stderr. Aegis's own notes
 * (boot failures, a crashed VM's console) go to stderr.
 */
import { defineCommand } from "citty";
import { chunkBytes } from "../../daemon/logs/log-store.ts";
import { client } from "./_shared.ts";

export default defineCommand({
  meta: { name: "logs", description: "Print the output of a task" },
  args: {
    id: { type: "positional", required: true, valueHint: "ID", description: "Task id" },
    follow: { type: "boolean", alias: "f", description: "Keep streaming until the task ends" },
  },
  async run({ args }) {
    for await (const line of client().taskLogs(args.id, args.follow === true)) {
      if (line.type === "output") (line.stream === "stdout" ? process.stdout : process.stderr).write(chunkBytes(line));
    }
  },
});

/**
 * @module cli/commands/logs
 * `aegis logs NAME [-f] [--tail N]`: the output of an instance (by name or
 * id) or of a task (`task-...`). stdout to stdout, stderr to stderr; Aegis's
 * own notes (boot failures, a crashed VM's console) go to stderr.
 */
import { defineCommand } from "citty";
import { writeData } from "../output.ts";
import { chunkBytes } from "../../api/log-chunks.ts";
import { UsageError } from "../errors.ts";
import { client } from "./_shared.ts";

export default defineCommand({
  meta: { name: "logs", description: "Print the output of an instance or a task" },
  args: {
    name: { type: "positional", required: true, valueHint: "NAME", description: "Instance name or id, or a task id" },
    follow: { type: "boolean", alias: "f", description: "Keep streaming new output" },
    tail: { type: "string", valueHint: "N", description: "Only the last N chunks of stored output" },
  },
  async run({ args }) {
    if (args.tail !== undefined && !/^\d+$/.test(args.tail)) throw new UsageError(`invalid --tail value "${args.tail}": expected a whole number`);
    const api = client();
    const follow = args.follow === true;
    const lines = args.name.startsWith("task-") ? api.taskLogs(args.name, follow) : api.instanceLogs(args.name, follow, args.tail === undefined ? undefined : Number(args.tail));
    for await (const line of lines) {
      if (line.type === "output") await writeData(line.stream === "stdout" ? process.stdout : process.stderr, chunkBytes(line));
    }
  },
});

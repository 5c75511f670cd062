/**
 * @module cli/commands/exec
 * `aegis exec NAME -- COMMAND [ARGS...]`: run a command in an instance
 * (waking it if paused or stopped); exits with the command's code.
 */
import { defineCommand } from "citty";
import { fromEnvelope } from "../../api/errors.ts";
import { chunkBytes } from "../../api/log-chunks.ts";
import { UsageError } from "../errors.ts";
import { client, commandLine } from "./_shared.ts";
import { parseEnv } from "./run.ts";

export default defineCommand({
  meta: { name: "exec", description: "Run a command in an instance; the command goes after --" },
  args: {
    name: { type: "positional", required: true, valueHint: "NAME", description: "Instance name or id" },
    env: { type: "string", valueHint: "K=V", repeatable: true, description: "Set an environment variable (repeatable)" },
    workdir: { type: "string", valueHint: "DIR", description: "Working directory in the guest" },
  },
  async run(ctx) {
    const { rest, multi } = commandLine(ctx);
    if (rest.length === 0) throw new UsageError("missing command: put it after --, e.g. aegis exec my-agent -- ls /workspace");
    for await (const line of client().exec(ctx.args.name, { command: rest, env: parseEnv(multi.env ?? []), cwd: ctx.args.workdir })) {
      if (line.type === "output") (line.stream === "stdout" ? process.stdout : process.stderr).write(chunkBytes(line));
      else if (line.type === "exit") return line.code;
      else throw fromEnvelope({ error: line.error });
    }
    throw new Error("exec stream ended without an exit code");
  },
});

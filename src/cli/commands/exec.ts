/**
 * @module cli/commands/exec
 * `aegis exec [-i] [-t] [-w DIR] [-u USER] [--env K=V]... NAME -- COMMAND [ARGS...]`:
 * run a command in an instance (waking it if paused or stopped), as the
 * instance's user in its workdir unless overridden; exits with the command's code.
 */
import { defineCommand } from "citty";
import { fromEnvelope } from "../../api/errors.ts";
import { writeData } from "../output.ts";
import { chunkBytes } from "../../api/log-chunks.ts";
import { ActionableError, UsageError } from "../errors.ts";
import { DaemonConnectionLost } from "../../api/client.ts";
import { client, commandLine } from "./_shared.ts";
import type { ParsedCommandLine } from "../argv.ts";
import { runInteractive } from "../interactive.ts";
import { interactiveArgs, processArgs, processBody } from "./_instance-args.ts";
import { parseEnv } from "./run.ts";

export default defineCommand({
  meta: { name: "exec", description: "Run a command in an instance; the command goes after --" },
  args: {
    name: { type: "positional", required: true, valueHint: "NAME", description: "Instance name or id" },
    env: { type: "string", valueHint: "K=V", repeatable: true, description: "Set an environment variable (repeatable)" },
    workdir: processArgs.workdir,
    user: processArgs.user,
    ...interactiveArgs,
  },
  async run(ctx) {
    const { rest, multi } = commandLine(ctx);
    if (rest.length === 0) throw new UsageError("missing command: put it after --, e.g. aegis exec my-agent -- ls /workspace");
    const cl = commandLine(ctx);
    const { workdir, user } = processBody(ctx.args as ParsedCommandLine["values"], cl);
    const req = { command: rest, env: parseEnv(multi.env ?? []), cwd: workdir, user };
    if (ctx.args.interactive || ctx.args.tty) {
      return runInteractive({ path: `/v1/instances/${encodeURIComponent(ctx.args.name)}/exec/session`, start: req, tty: ctx.args.tty === true, stdin: ctx.args.interactive === true });
    }
    let started = false;
    try {
      for await (const line of client().exec(ctx.args.name, req)) {
        started = true;
        if (line.type === "output") await writeData(line.stream === "stdout" ? process.stdout : process.stderr, chunkBytes(line));
        else if (line.type === "exit") return line.code;
        else throw fromEnvelope({ error: line.error });
      }
    } catch (err) {
      // Before the first line, a daemon that is not there is the usual error (api/client.ts).
      if (!(err instanceof DaemonConnectionLost) || !started) throw err;
    }
    // The stream ended without its exit record: aegisd went away (stopped, crashed, restarting).
    throw execLost(ctx.args.name);
  },
});

/**
 * An exec whose stream ended without its exit record. Unlike a task, an
 * exec's output is not logged, so it cannot be picked up again after an
 * aegisd restart (as `docker exec` under Docker's live-restore).
 */
function execLost(name: string): ActionableError {
  return new ActionableError(
    `aegis: aegisd went away while the exec in "${name}" ran (it stopped, crashed or is restarting); its output and exit code are lost`,
    `the instance keeps running; 'aegis status' shows whether aegisd is back ('aegis up' starts it); then run the command again`,
  );
}

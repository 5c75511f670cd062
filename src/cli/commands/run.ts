/**
 * @module cli/commands/run
 * `aegis run [--image IMAGE] [--secret KEY]... [--env K=V]... [--memory MB]
 * [--cpus N] [--expose PORT]... [--entrypoint CMD] [-w DIR] [-u USER] [-i] [-t]
 * [-- COMMAND [ARGS...]]`: run a command in a fresh microVM. Without a
 * command the image's ENTRYPOINT + CMD run, as with `docker run`. Without `--expose` it is a task (task mode); with it, a
 * served instance (serve mode, see `_serve.ts`). Guest stdout goes to stdout and guest stderr to stderr, byte for
 * byte; the exit code is the command's (128+N for a signal). Ctrl+C cancels
 * the task, which tears its VM down, and exits 130.
 */
import { defineCommand } from "citty";
import { chunkBytes } from "../../api/log-chunks.ts";
import { DaemonConnectionLost, DaemonNotRunning } from "../../api/client.ts";
import { ActionableError, UsageError } from "../errors.ts";
import { pullWithProgress } from "../progress.ts";
import { writeData } from "../output.ts";
import type { ParsedCommandLine } from "../argv.ts";
import { runInteractive } from "../interactive.ts";
import { instanceArgs, instanceBody, interactiveArgs, networkArgs, networkBody, processArgs, processBody } from "./_instance-args.ts";
import { serve } from "./_serve.ts";
import { client, commandLine } from "./_shared.ts";

/** Parse `--env K=V` values. */
export function parseEnv(values: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const v of values) {
    const eq = v.indexOf("=");
    const key = eq > 0 ? v.slice(0, eq) : "";
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) throw new UsageError(`invalid --env value "${v}": expected KEY=VALUE with KEY an environment variable name`);
    env[key] = v.slice(eq + 1);
  }
  return env;
}

/** Parse a positive integer flag. */
export function parsePositive(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new UsageError(`invalid --${flag} value "${value}": expected a positive whole number`);
  return Number(value);
}

export default defineCommand({
  meta: { name: "run", description: "Run a command in a fresh microVM; the command goes after --" },
  args: {
    image: { type: "string", valueHint: "IMAGE", description: "OCI image to use as the rootfs (default: the base busybox rootfs)" },
    secret: { type: "string", valueHint: "KEY", repeatable: true, description: "Inject this secret as an env var (repeatable; '*' for all)" },
    env: { type: "string", valueHint: "K=V", repeatable: true, description: "Set an environment variable in the guest (repeatable)" },
    memory: { type: "string", valueHint: "MB", description: "Guest memory in MiB (default 512)" },
    cpus: { type: "string", valueHint: "N", description: "Guest vCPUs (default 1)" },
    expose: instanceArgs.expose,
    ...networkArgs,
    ...processArgs,
    ...interactiveArgs,
  },
  async run(ctx) {
    const cl = commandLine(ctx);
    const { multi, rest } = cl;
    if (rest.length === 0 && !ctx.args.image) throw new UsageError('missing command: put it after --, e.g. aegis run -- echo "hello from aegis" (an --image may bring its own)');
    if (multi.expose) return serve(instanceBody(ctx.args as ParsedCommandLine["values"], cl));
    const api = client();
    // Like `docker run`: use the local image when it was pulled before, else pull it now.
    const image = ctx.args.image ? ((await api.findImage(ctx.args.image)) ?? (await pullWithProgress(api, ctx.args.image))) : undefined;
    const body = {
      ...processBody(ctx.args as ParsedCommandLine["values"], cl),
      image: image?.digest,
      secrets: multi.secret ?? [],
      env: parseEnv(multi.env ?? []),
      memory_mb: parsePositive("memory", ctx.args.memory),
      vcpus: parsePositive("cpus", ctx.args.cpus),
      network: networkBody(ctx.args as ParsedCommandLine["values"], cl),
    };
    if (ctx.args.interactive || ctx.args.tty) {
      if (ctx.args.tty && !process.stdin.isTTY) process.stderr.write("aegis: -t: stdin is not a terminal; running on a guest terminal without raw mode\n");
      return runInteractive({ path: "/v1/tasks/session", start: body, tty: ctx.args.tty === true, stdin: ctx.args.interactive === true });
    }
    const task = await api.createTask(body);
    let interrupted = false;
    const onSigint = () => {
      if (interrupted) process.exit(130);
      interrupted = true;
      process.stderr.write(`\naegis: cancelling ${task.id}\n`);
      api.cancelTask(task.id).then(
        () => process.exit(130),
        (err: unknown) => {
          process.stderr.write(`aegis: cancel failed: ${err instanceof Error ? err.message : String(err)}\n`);
          process.exit(130);
        },
      );
    };
    process.on("SIGINT", onSigint);
    process.on("SIGTERM", onSigint);
    return await followTask(task.id, () => interrupted);
  },
});

/** How long `aegis run` waits for a restarting aegisd to answer again before giving up on the stream. */
export const RECONNECT_TIMEOUT_MS = 120_000;
const RECONNECT_STEP_MS = 200;

/**
 * Print a task's output as it comes and return its exit code. The task
 * runs in aegisd, not in this process, so when aegisd restarts (an upgrade,
 * a crash) the task goes on: we say so once on stderr and reconnect to its
 * log from the last seq printed (`after_seq`), so no line is printed twice
 * and none is skipped, for up to {@link RECONNECT_TIMEOUT_MS}.
 */
export async function followTask(id: string, interrupted: () => boolean): Promise<number> {
  const api = client();
  let lastSeq = 0;
  let away: number | null = null;
  for (;;) {
    try {
      for await (const line of api.taskLogs(id, true, undefined, lastSeq > 0 ? lastSeq : undefined)) {
        away = null;
        if (line.type === "output") {
          await writeData(line.stream === "stdout" ? process.stdout : process.stderr, chunkBytes(line));
          lastSeq = line.seq;
          continue;
        }
        if (interrupted()) return 130;
        if (line.state === "cancelled") return 130;
        if (line.exit_code !== null) return line.exit_code;
        process.stderr.write(`aegis: task ${id} ${line.state}${line.error ? `: ${line.error}` : ""}\n`);
        return 1;
      }
      // The stream ended without its end record: the daemon went away between two lines.
    } catch (err) {
      if (!(err instanceof DaemonNotRunning || err instanceof DaemonConnectionLost)) throw err;
    }
    if (away === null) {
      away = Date.now();
      process.stderr.write("aegis: aegisd restarted, reconnecting\n");
    } else if (Date.now() - away > RECONNECT_TIMEOUT_MS) {
      throw new ActionableError(
        `aegisd did not come back within ${RECONNECT_TIMEOUT_MS / 1000} s, so the output of task ${id} stops here`,
        `start it with 'aegis up'; the task keeps running in its VM, and 'aegis logs ${id} -f' shows the rest`,
      );
    }
    await Bun.sleep(RECONNECT_STEP_MS);
  }
}

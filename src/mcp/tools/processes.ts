/**
 * @module mcp/tools/processes
 * Running commands: `run` (a one-shot command in a fresh VM, a task) and
 * `exec` (a command in an instance), both returning stdout, stderr and the
 * exit code with each stream capped (capped-output.ts), and `logs` (the tail
 * of an instance's output).
 *
 * Timeouts: `run` cancels its task when the time is up (the VM is torn
 * down); `exec` passes `timeout_s` to the daemon, which kills the process
 * group. Either way the result says `timed_out: true` with the output so far.
 */
import { z } from "zod";
import { fromEnvelope } from "../../api/errors.ts";
import { chunkBytes } from "../../api/log-chunks.ts";
import { CappedOutput, OUTPUT_CAP_BYTES } from "../capped-output.ts";
import { ok } from "../result.ts";
import { defineTool } from "../tool.ts";
import { Command, Env, ImageRef, InstanceRef, SecretNames, User, Workdir } from "./_fields.ts";
import { ensureImage } from "./_view.ts";

const KIB = OUTPUT_CAP_BYTES / 1024;
const capNote = `stdout and stderr are returned as UTF-8 text, each capped at ${KIB} KiB (the beginning is kept, then a "[truncated: N more bytes]" marker)`;

/** Default and largest timeouts, seconds. */
const RUN_DEFAULT_S = 600;
const EXEC_DEFAULT_S = 300;
const MAX_TIMEOUT_S = 3600;

/** The result text a model reads first: exit status, then both streams. */
function render(r: { exit_code: number | null; signal: string | null; timed_out: boolean; stdout: string; stderr: string; error?: string | null }): string {
  const status = r.timed_out ? "timed out" : r.error ? `failed: ${r.error}` : `exit code ${r.exit_code}${r.signal ? ` (${r.signal})` : ""}`;
  return `${status}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;
}

const run = defineTool({
  name: "run",
  title: "Run a command in a fresh VM",
  description: `Run one command in a fresh, throw-away Aegis microVM (own kernel, no access to the host) and return its stdout, stderr and exit code; the VM is destroyed afterwards. Use an instance (instance_start + exec) to keep state between commands. The image is pulled when it is not local. ${capNote}. timeout_s defaults to ${RUN_DEFAULT_S} (at most ${MAX_TIMEOUT_S}); on timeout the VM is torn down and timed_out is true.`,
  input: z
    .object({
      command: Command,
      image: ImageRef.optional(),
      env: Env.optional(),
      secrets: SecretNames.optional(),
      workdir: Workdir.optional(),
      user: User.optional(),
      timeout_s: z.number().int().min(1).max(MAX_TIMEOUT_S).default(RUN_DEFAULT_S).describe(`Seconds before the VM is torn down (default ${RUN_DEFAULT_S})`),
      memory_mb: z.number().int().min(128).max(65536).optional().describe("Guest memory in MiB (default 512)"),
      vcpus: z.number().int().min(1).max(64).optional().describe("Guest vCPUs (default 1)"),
    })
    .strict(),
  async run(args, { link, signal }) {
    return link.call(async (c) => {
      const { timeout_s, image, ...rest } = args;
      const digest = image === undefined ? undefined : await ensureImage(c, image);
      const task = await c.createTask({ ...rest, image: digest, secrets: rest.secrets ?? [], env: rest.env ?? {} });
      const out = { stdout: new CappedOutput(), stderr: new CappedOutput() };
      let timedOut = false;
      const cancel = () => c.cancelTask(task.id);
      const timer = setTimeout(() => {
        timedOut = true;
        // The end record reports the outcome; a failed cancel is worth a line on stderr.
        cancel().catch((err: unknown) => link.note(`cancelling ${task.id} after ${timeout_s} s failed: ${(err as Error).message}`));
      }, timeout_s * 1000);
      const onAbort = () => cancel().catch((err: unknown) => link.note(`cancelling ${task.id} (request cancelled) failed: ${(err as Error).message}`));
      signal.addEventListener("abort", onAbort);
      try {
        for await (const line of c.taskLogs(task.id, true)) {
          if (line.type === "output") {
            if (line.stream !== "system") out[line.stream].push(chunkBytes(line));
            continue;
          }
          const result = {
            task_id: task.id,
            state: line.state,
            exit_code: line.exit_code,
            signal: line.signal,
            timed_out: timedOut,
            error: timedOut ? null : line.error,
            stdout: out.stdout.text(),
            stderr: out.stderr.text(),
          };
          return ok(result, render(result));
        }
        throw new Error(`the log stream of task ${task.id} ended without a result`);
      } finally {
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
      }
    });
  },
});

const exec = defineTool({
  name: "exec",
  title: "Run a command in an instance",
  description: `Run a command inside an existing instance (waking it when paused or stopped), with the instance's environment, working directory and user unless overridden, and return its stdout, stderr and exit code. ${capNote}. timeout_s defaults to ${EXEC_DEFAULT_S} (at most ${MAX_TIMEOUT_S}); on timeout the process is killed and timed_out is true.`,
  input: z
    .object({
      instance: InstanceRef,
      command: Command,
      cwd: Workdir.optional(),
      env: Env.optional(),
      user: User.optional(),
      timeout_s: z.number().int().min(1).max(MAX_TIMEOUT_S).default(EXEC_DEFAULT_S).describe(`Seconds before the process is killed (default ${EXEC_DEFAULT_S})`),
    })
    .strict(),
  async run(args, { link }) {
    return link.call(async (c) => {
      const out = { stdout: new CappedOutput(), stderr: new CappedOutput() };
      for await (const line of c.exec(args.instance, { command: args.command, cwd: args.cwd, env: args.env ?? {}, user: args.user, timeout_s: args.timeout_s })) {
        if (line.type === "output") out[line.stream].push(chunkBytes(line));
        else if (line.type === "error") throw fromEnvelope({ error: line.error });
        else {
          const result = { exit_code: line.code, signal: line.signal, timed_out: line.timed_out === true, stdout: out.stdout.text(), stderr: out.stderr.text() };
          return ok(result, render(result));
        }
      }
      throw new Error("the exec stream ended without an exit code");
    });
  },
});

/** Most lines `logs` returns. */
const MAX_LOG_LINES = 5000;

const logs = defineTool({
  name: "logs",
  title: "Tail an instance's output",
  description: `The last lines of an instance's output (its main process, plus Aegis's own notes such as boot failures, marked [aegis]), oldest first. tail defaults to 100 (at most ${MAX_LOG_LINES}); the text is capped at ${KIB} KiB (the newest lines are kept). Follow them live with the resource aegis://instances/{name}/logs.`,
  input: z.object({ instance: InstanceRef, tail: z.number().int().min(1).max(MAX_LOG_LINES).default(100).describe("Number of lines from the end") }).strict(),
  readOnly: true,
  async run({ instance, tail }, { link }) {
    return link.call(async (c) => ok(await tailLogs(c, instance, tail)));
  },
});

/** The last `tail` log lines of `instance` as text, newest kept within the cap. */
export async function tailLogs(c: import("../../api/client.ts").AegisClient, instance: string, tail: number): Promise<{ text: string; lines: number; truncated: boolean }> {
  const lines: string[] = [];
  for await (const line of c.instanceLogs(instance, false, tail)) {
    if (line.type !== "output") continue;
    const text = chunkBytes(line).toString("utf8");
    lines.push(line.stream === "system" ? `[aegis] ${text}` : text);
  }
  let text = lines.join("");
  const bytes = Buffer.byteLength(text);
  const truncated = bytes > OUTPUT_CAP_BYTES;
  if (truncated) text = `[truncated: ${bytes - OUTPUT_CAP_BYTES} earlier bytes]\n${Buffer.from(text).subarray(bytes - OUTPUT_CAP_BYTES).toString("utf8")}`;
  return { text, lines: lines.length, truncated };
}

/** The process tools, in `tools/list` order. */
export const processTools = [run, exec, logs];

/**
 * @module vmm/worker-main
 * The `aegis-vmm-worker` role (`aegis __vmm`): one process per libkrun VM.
 * It reads its configuration (libkrun-config.ts) as one JSON document from
 * stdin, or from `--config <file>` when that file is private (mode 0600 or
 * stricter, owned by us); argv carries no VM settings, only `--run-dir`,
 * which lets the daemon recognise a stale worker. It then dlopens libkrun,
 * configures a context and calls `krun_start_enter`, which never returns on
 * success: libkrun runs the VM in this process and `exit()`s with the guest
 * workload's code when it ends.
 *
 * Exit codes before the VM starts: 2 for a bad configuration (unparsable,
 * failing the schema, or an insecure file), 3 when the library does not
 * load, 4 when a libkrun call fails (the message names the C function and
 * errno). Errors go to stderr, which the backend keeps in `worker.log`.
 */
import { readFileSync, statSync } from "node:fs";
import { isKrunError, openLibkrun, type Libkrun } from "../../ffi/libkrun.ts";
import { applyConfig, KrunWorkerConfig } from "./libkrun-config.ts";

/** A worker failure with its exit code. */
export class WorkerError extends Error {
  override name = "WorkerError";
  constructor(
    message: string,
    readonly exitCode: 2 | 3 | 4,
  ) {
    super(message);
  }
}

/** Parsed worker arguments. */
export interface WorkerArgs {
  configFile?: string;
  runDir?: string;
}

/** Parse `--config <file>` and `--run-dir <dir>`; anything else is an error. */
export function parseWorkerArgs(argv: string[]): WorkerArgs {
  const out: WorkerArgs = {};
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new WorkerError(`${flag} needs a value`, 2);
    if (flag === "--config") out.configFile = value;
    else if (flag === "--run-dir") out.runDir = value;
    else throw new WorkerError(`unknown argument ${flag} (the configuration comes on stdin or from --config <0600 file>)`, 2);
  }
  return out;
}

/** Read a config file, refusing one that others can read or that we do not own. */
export function readPrivateFile(path: string): string {
  const st = statSync(path);
  if ((st.mode & 0o077) !== 0) throw new WorkerError(`config file ${path} has mode ${(st.mode & 0o777).toString(8)}; it must be 0600 (readable by its owner only)`, 2);
  if (process.getuid && st.uid !== process.getuid()) throw new WorkerError(`config file ${path} is owned by uid ${st.uid}, not by us (${process.getuid()})`, 2);
  return readFileSync(path, "utf8");
}

/** Parse and validate the configuration text. */
export function parseWorkerConfig(text: string, source: string): KrunWorkerConfig {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new WorkerError(`configuration from ${source} is not JSON: ${(err as Error).message}`, 2);
  }
  const parsed = KrunWorkerConfig.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
    throw new WorkerError(`configuration from ${source} is invalid: ${issues}`, 2);
  }
  return parsed.data;
}

/** Load the library, configure the VM and enter it. Returns only by throwing. */
export function runWorker(cfg: KrunWorkerConfig): never {
  let lib: Libkrun;
  try {
    lib = openLibkrun(cfg.library);
  } catch (err) {
    throw new WorkerError((err as Error).message, 3);
  }
  try {
    const ctx = applyConfig(lib, cfg);
    process.stderr.write(`aegis-vmm-worker: VM ${cfg.id}: entering libkrun (${cfg.vcpus} vCPUs, ${cfg.memoryMb} MiB)\n`);
    lib.startEnter(ctx);
  } catch (err) {
    if (isKrunError(err) || (err instanceof AggregateError && err.errors.some(isKrunError))) throw new WorkerError(`VM ${cfg.id}: ${(err as Error).message}`, 4);
    throw err;
  }
}

/** Role entry point. */
export async function main(argv: string[]): Promise<void> {
  try {
    const args = parseWorkerArgs(argv);
    const text = args.configFile ? readPrivateFile(args.configFile) : await Bun.stdin.text();
    runWorker(parseWorkerConfig(text, args.configFile ?? "stdin"));
  } catch (err) {
    if (!(err instanceof WorkerError)) throw err;
    process.stderr.write(`aegis-vmm-worker: ${err.message}\n`);
    process.exit(err.exitCode);
  }
}

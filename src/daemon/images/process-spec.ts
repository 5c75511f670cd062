/**
 * @module daemon/images/process-spec
 * The one place where an image's config and a request become the process a
 * guest runs, with Docker's rules (`docker run` users expect them):
 * - argv is Entrypoint + Cmd. Arguments given after `--` replace Cmd and keep
 *   Entrypoint; `--entrypoint` replaces Entrypoint and drops the image's Cmd
 *   (an empty entrypoint clears it, so the arguments alone run).
 * - Env: the image's `Env` first, then the request's (kit, `--env`, secrets)
 *   over it.
 * - cwd: `--workdir`, else the image's WorkingDir, else `/`.
 * - user: `--user`, else the image's User, else root. The guest harness
 *   resolves names against the image's /etc/passwd and /etc/group.
 * No command at all is an error that names the image.
 *
 * Records pulled before the run config was kept have only PATH and
 * WorkingDir; those apply and the rest reads as unset (re-pull to fill it).
 */
import { InvalidRequest } from "../../api/errors.ts";
import type { ImageRecord, ImageRunConfig } from "../../api/schema/images.ts";

/** What a front asks for (every field optional). */
export interface ProcessRequest {
  /** Arguments after `--`: replace the image's Cmd. */
  command?: string[];
  /** `--entrypoint`: replaces the image's Entrypoint and drops its Cmd; `[]` clears it. */
  entrypoint?: string[];
  /** `--workdir` (absolute). */
  workdir?: string;
  /** `--user`. */
  user?: string;
  /** Environment over the image's. */
  env?: Record<string, string>;
}

/** The process a guest runs. */
export interface ProcessSpec {
  argv: string[];
  env: Record<string, string>;
  cwd: string | null;
  user: string | null;
}

/** The run config of an image record (older records: only PATH and WorkingDir). */
export function imageRunConfig(image: ImageRecord): ImageRunConfig {
  return (
    image.config ?? {
      entrypoint: null,
      cmd: null,
      env: image.env_path === null ? [] : [`PATH=${image.env_path}`],
      working_dir: image.working_dir,
      user: null,
      exposed_ports: [],
      stop_signal: null,
      labels: {},
    }
  );
}

/** `KEY=VALUE` strings as a record (a bare `KEY` is an empty value, later entries win). */
export function envRecord(list: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of list) {
    const eq = entry.indexOf("=");
    if (eq === 0) continue;
    if (eq < 0) env[entry] = "";
    else env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return env;
}

/** Resolve the process for `req` on `image` (null: the base rootfs, which has no config). */
export function resolveProcess(image: { ref: string; config: ImageRunConfig } | null, req: ProcessRequest): ProcessSpec {
  const config = image?.config ?? null;
  const entrypoint = req.entrypoint ?? config?.entrypoint ?? [];
  const cmd = req.command && req.command.length > 0 ? req.command : req.entrypoint !== undefined ? [] : (config?.cmd ?? []);
  const argv = [...entrypoint, ...cmd];
  if (argv.length === 0) {
    throw image
      ? new InvalidRequest(`image ${image.ref} has no default command (no Entrypoint or Cmd in its config)`, "give the command after --, e.g. aegis run --image IMAGE -- sh")
      : new InvalidRequest("no command: give one after --", "e.g. aegis run -- echo hello");
  }
  return {
    argv,
    env: { ...envRecord(config?.env ?? []), ...(req.env ?? {}) },
    cwd: req.workdir ?? config?.working_dir ?? null,
    user: req.user ?? config?.user ?? null,
  };
}

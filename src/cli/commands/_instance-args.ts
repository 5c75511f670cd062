/**
 * @module cli/commands/_instance-args
 * Flags shared by `aegis instance start`, `aegis run --expose` and
 * `aegis app serve`, and their translation into an `InstanceCreate` body.
 */
import type { InstanceCreate } from "../../api/schema/instances.ts";
import { UsageError } from "../errors.ts";
import type { AegisArgsDef, ParsedCommandLine } from "../argv.ts";
import { parseEnv, parsePositive } from "./run.ts";
import { NetworkRuleError, parseRules, type NetworkPolicy, type NetworkRule } from "../../api/network-policy.ts";

/** VM flags common to tasks and instances. */
export const vmArgs = {
  image: { type: "string", valueHint: "IMAGE", description: "OCI image to use as the rootfs (default: the base busybox rootfs)" },
  secret: { type: "string", valueHint: "KEY", repeatable: true, description: "Inject this secret as an env var (repeatable; '*' for all)" },
  env: { type: "string", valueHint: "K=V", repeatable: true, description: "Set an environment variable in the guest (repeatable)" },
  memory: { type: "string", valueHint: "MB", description: "Guest memory in MiB (default 512)" },
  cpus: { type: "string", valueHint: "N", description: "Guest vCPUs (default 1)" },
} as const satisfies AegisArgsDef;

/** Egress policy flags, shared by tasks and instances (api/network-policy.ts has the RULE syntax). */
export const networkArgs = {
  allow: { type: "string", valueHint: "RULE", repeatable: true, description: "Allow egress to RULE: CIDR, DOMAIN or *.DOMAIN (each with optional :PORT), or host:PORT for one host service (repeatable; ordered with --deny, first match wins)" },
  deny: { type: "string", valueHint: "RULE", repeatable: true, description: "Refuse egress to RULE (same syntax as --allow; repeatable, ordered)" },
  "no-network": { type: "boolean", description: "No network at all (the guest reaches nothing; exposed ports still work)" },
} as const satisfies AegisArgsDef;

/** The `network` field of a request body from `--allow`/`--deny`/`--no-network` (undefined when none was given). */
export function networkBody(values: ParsedCommandLine["values"], cl: ParsedCommandLine): NetworkPolicy | undefined {
  const rules: NetworkRule[] = cl.ordered.filter((o) => o.name === "allow" || o.name === "deny").map((o) => ({ action: o.name as "allow" | "deny", target: o.value.trim() }));
  if (values["no-network"] === true) {
    if (rules.length > 0) throw new UsageError("--no-network cannot be combined with --allow or --deny (there is no network to apply them to)");
    return { mode: "none", rules: [] };
  }
  if (rules.length === 0) return undefined;
  try {
    parseRules(rules);
  } catch (err) {
    if (err instanceof NetworkRuleError) throw new UsageError(err.message);
    throw err;
  }
  return { mode: "default", rules };
}

/** How the process runs, over the image's config (Docker's flags). */
export const processArgs = {
  entrypoint: { type: "string", valueHint: "CMD", description: "Replace the image's ENTRYPOINT (and drop its CMD); '' clears it" },
  workdir: { type: "string", alias: "w", valueHint: "DIR", description: "Working directory inside the guest (default: the image's WORKDIR, else /)" },
  user: { type: "string", alias: "u", valueHint: "USER[:GROUP]", description: "Run as this user: name, uid, name:group or uid:gid (default: the image's USER, else root)" },
} as const satisfies AegisArgsDef;

/** The process fields of a request body from parsed flags (only what was given). */
export function processBody(values: ParsedCommandLine["values"], cl: ParsedCommandLine): { command?: string[]; entrypoint?: string[]; workdir?: string; user?: string } {
  const body: { command?: string[]; entrypoint?: string[]; workdir?: string; user?: string } = {};
  if (cl.rest.length > 0) body.command = cl.rest;
  if (typeof values.entrypoint === "string") body.entrypoint = values.entrypoint === "" ? [] : [values.entrypoint];
  if (typeof values.workdir === "string") {
    if (!values.workdir.startsWith("/")) throw new UsageError(`invalid --workdir value "${values.workdir}": expected an absolute path inside the guest, e.g. /srv/app`);
    body.workdir = values.workdir;
  }
  if (typeof values.user === "string") {
    if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?$/.test(values.user)) throw new UsageError(`invalid --user value "${values.user}": expected NAME, UID, NAME:GROUP or UID:GID`);
    body.user = values.user;
  }
  return body;
}

/** `-i` / `-t`, as with `docker run` and `docker exec`. */
export const interactiveArgs = {
  interactive: { type: "boolean", alias: "i", description: "Keep stdin open and stream it to the command" },
  tty: { type: "boolean", alias: "t", description: "Run the command on a terminal (use with -i for an interactive shell)" },
} as const satisfies AegisArgsDef;

/** Flags only instances have. */
export const instanceArgs = {
  expose: { type: "string", valueHint: "[PUBLIC:]PORT", repeatable: true, description: "Expose a guest port through the router, or on 127.0.0.1:PUBLIC (repeatable)" },
  workspace: { type: "string", valueHint: "NAME|PATH", description: "Host directory mounted at /workspace (a name under AEGIS_HOME/data/workspaces, or an absolute path)" },
  "pause-after": { type: "string", valueHint: "SECONDS", description: "Pause after this many idle seconds (0 = never; default 60)" },
  "stop-after": { type: "string", valueHint: "SECONDS", description: "Stop after this many more idle seconds once paused (0 = never; default 1200)" },
  netns: { type: "string", valueHint: "PATH", description: "Pod network: the VM's network is this network namespace (e.g. /var/run/netns/cni-...), answering on its IPv4 address (aegisd as root; no --allow/--deny/--no-network/--expose)" },
} as const satisfies AegisArgsDef;

function seconds(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new UsageError(`invalid --${flag} value "${value}": expected whole seconds (0 = never)`);
  return Number(value);
}

/** Check `--expose` values: PORT or PUBLIC:GUEST, each 1-65535. */
export function checkExpose(values: string[]): string[] {
  for (const v of values) {
    const ok = /^(\d{1,5}:)?\d{1,5}$/.test(v) && v.split(":").every((p) => Number(p) >= 1 && Number(p) <= 65535);
    if (!ok) throw new UsageError(`invalid --expose value "${v}": expected PORT or PUBLIC:GUEST with ports 1-65535`);
  }
  return values;
}

/** Build the `InstanceCreate` body from parsed flags (only what was given, so kit and app defaults apply). */
export function instanceBody(values: ParsedCommandLine["values"], cl: ParsedCommandLine): InstanceCreate {
  const str = (k: string) => (typeof values[k] === "string" ? (values[k] as string) : undefined);
  const body: InstanceCreate = processBody(values, cl);
  if (str("name")) body.name = str("name");
  if (str("image")) body.image = str("image");
  if (str("kit")) body.kit = str("kit");
  if (cl.multi.secret) body.secrets = cl.multi.secret;
  if (cl.multi.env) body.env = parseEnv(cl.multi.env);
  if (cl.multi.expose) body.expose = checkExpose(cl.multi.expose);
  if (str("workspace")) body.workspace = str("workspace");
  if (str("netns")) body.netns_path = str("netns");
  const memory = parsePositive("memory", str("memory"));
  if (memory !== undefined) body.memory_mb = memory;
  const cpus = parsePositive("cpus", str("cpus"));
  if (cpus !== undefined) body.vcpus = cpus;
  const pause = seconds("pause-after", str("pause-after"));
  if (pause !== undefined) body.pause_after_s = pause;
  const stop = seconds("stop-after", str("stop-after"));
  if (stop !== undefined) body.stop_after_s = stop;
  const network = networkBody(values, cl);
  if (network) body.network = network;
  return body;
}

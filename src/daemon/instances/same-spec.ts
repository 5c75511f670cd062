/**
 * @module daemon/instances/same-spec
 * Does a create request for an existing stopped instance ask for what it
 * already is? The rule, chosen to be what a Docker user expects: `docker run
 * --name X` on an existing X is an error and `docker start X` starts it as it
 * is, so `aegis instance start --name X` starts the stopped X only when it
 * asks for nothing else. Only the fields the request actually gives are
 * compared (the CLI sends only the flags the user typed), each resolved the
 * way a new instance's spec would be (spec.ts) against the stored spec:
 * `--memory 512` on an instance with 512 MiB is the same, `--memory 1024`
 * is a difference; `--env`, `--workdir`, `--user`, `--entrypoint` and the
 * command are resolved over the stored image's config (images/process-spec.ts)
 * exactly as at creation, then compared with the stored process. Any difference is reported by field so the Conflict can
 * say exactly what differs. Nothing here changes state (no workspace is
 * created, no image pulled).
 */
import { isAbsolute, join } from "node:path";
import { SpawnCapabilities } from "../../api/schema/capabilities.ts";
import type { ImageRecord } from "../../api/schema/images.ts";
import type { InstanceCreate } from "../../api/schema/instances.ts";
import { imageRunConfig, resolveProcess } from "../images/process-spec.ts";
import type { InstanceSpec } from "../registry/instances.ts";
import { parseExpose, type SpecSources } from "./spec.ts";

/** One field that differs: its flag-like name and both values, rendered for a message. */
export interface SpecDifference {
  field: string;
  stored: string;
  requested: string;
}

const show = (v: unknown) => (v === null || v === undefined ? "none" : JSON.stringify(v));
const sorted = (xs: string[]) => [...xs].sort();
const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
const sortedRecord = (r: Record<string, unknown>) => Object.fromEntries(Object.entries(r).sort(([a], [b]) => a.localeCompare(b)));

/** The kit manifest's instance defaults, or none when the kit is gone. */
function kitInstance(src: SpecSources, kit: string | null | undefined) {
  if (!kit) return undefined;
  const found = src.kits.list().find((k) => k.manifest.name === kit);
  return found?.manifest.instance;
}

/** The fields of `input` (given ones only) that differ from `stored`; `image` is the stored image's record (null: base rootfs). */
export function specDifferences(input: InstanceCreate, stored: InstanceSpec, src: SpecSources, image: ImageRecord | null): SpecDifference[] {
  const out: SpecDifference[] = [];
  const check = (field: string, storedValue: unknown, requested: unknown) => {
    if (!same(storedValue, requested)) out.push({ field, stored: show(storedValue), requested: show(requested) });
  };
  const kit = kitInstance(src, input.kit ?? stored.kit);
  if (input.kit !== undefined) check("kit", stored.kit, input.kit);
  if (input.app !== undefined) check("app", stored.app_id, src.apps.get(input.app).id);
  if (input.image !== undefined) check("image", stored.image, input.image);
  const processGiven = input.command !== undefined || input.entrypoint !== undefined || input.workdir !== undefined || input.user !== undefined || input.env !== undefined;
  if (processGiven) {
    // Without a command or entrypoint in the request the argv is not compared; the stored one keeps resolution from failing.
    const argvGiven = input.command !== undefined || input.entrypoint !== undefined;
    const run = resolveProcess(image && { ref: image.ref, config: imageRunConfig(image) }, {
      command: input.command ?? (argvGiven ? kit?.command : stored.command),
      entrypoint: argvGiven ? input.entrypoint : [],
      workdir: input.workdir,
      user: input.user,
      env: { ...(kit?.env ?? {}), ...(input.env ?? {}) },
    });
    if (argvGiven) check("command", stored.command, run.argv);
    if (input.workdir !== undefined) check("workdir", stored.workdir, run.cwd);
    if (input.user !== undefined) check("user", stored.user, run.user);
    if (input.env !== undefined) check("env", sortedRecord(stored.env), sortedRecord(run.env));
  }
  if (input.secrets !== undefined) check("secrets", sorted(stored.secrets), sorted(input.secrets));
  if (input.expose !== undefined) {
    const key = (e: InstanceSpec["expose"]) => sorted(e.map((x) => (x.public_port === null ? String(x.guest_port) : `${x.public_port}:${x.guest_port}`)));
    check("expose", key(stored.expose), key(parseExpose(input.expose)));
  }
  if (input.workspace !== undefined) check("workspace", stored.workspace, isAbsolute(input.workspace) ? input.workspace : join(src.workspacesDir, input.workspace));
  if (input.memory_mb !== undefined) check("memory", stored.memory_mb, input.memory_mb);
  if (input.vcpus !== undefined) check("cpus", stored.vcpus, input.vcpus);
  if (input.pause_after_s !== undefined) check("pause-after", stored.pause_after_s, input.pause_after_s);
  if (input.stop_after_s !== undefined) check("stop-after", stored.stop_after_s, input.stop_after_s);
  if (input.capabilities !== undefined) check("capabilities", stored.capabilities, SpawnCapabilities.parse({ ...(kit?.capabilities ?? {}), ...input.capabilities }));
  if (input.network !== undefined) check("network", JSON.stringify(stored.network), JSON.stringify(input.network));
  return out;
}

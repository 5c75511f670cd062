/**
 * @module daemon/instances/spec
 * Turning an `InstanceCreate` request into the stored launch spec. Precedence
 * for every field: the explicit request, then the app's latest release (for
 * `app`), then the kit's instance defaults (for `kit`), then built-in
 * defaults. Everything is validated here, before anything is created.
 */
import { existsSync, lchownSync, lstatSync, mkdirSync, statSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import { InvalidRequest, PreconditionFailed } from "../../api/errors.ts";
import { SpawnCapabilities } from "../../api/schema/capabilities.ts";
import type { ImageRecord } from "../../api/schema/images.ts";
import type { InstanceCreate } from "../../api/schema/instances.ts";
import type { AppsService } from "../apps/service.ts";
import { imageRunConfig, resolveProcess } from "../images/process-spec.ts";
import type { KitsService } from "../kits/service.ts";
import type { InstanceSpec } from "../registry/instances.ts";
import type { SecretsService } from "../secrets/service.ts";
import { workspaceOwner } from "../../vmm/virtiofsd.ts";
import { DEFAULT_NETWORK } from "../../api/network-policy.ts";
import { netnsPathProblem } from "../../vmm/network/pod.ts";

/** Daemon-wide defaults (AEGIS_PAUSE_AFTER / AEGIS_STOP_AFTER seconds on aegisd). */
export interface InstanceDefaults {
  memoryMb: number;
  vcpus: number;
  pauseAfterS: number;
  stopAfterS: number;
}

/** Read the daemon-wide defaults from the environment (60 s pause, 20 min stop). */
export function defaultsFromEnv(env = process.env): InstanceDefaults {
  const seconds = (name: string, fallback: number) => {
    const raw = env[name];
    if (raw === undefined || raw === "") return fallback;
    if (!/^\d+$/.test(raw)) throw new Error(`${name}=${raw} is not a whole number of seconds`);
    return Number(raw);
  };
  return { memoryMb: 512, vcpus: 1, pauseAfterS: seconds("AEGIS_PAUSE_AFTER", 60), stopAfterS: seconds("AEGIS_STOP_AFTER", 1200) };
}

/**
 * Parse `GUEST` / `PUBLIC:GUEST` expose strings (already syntax-checked by
 * the schema). A guest port may be both routed and published; a public port
 * can serve only one guest port.
 */
export function parseExpose(specs: string[]): InstanceSpec["expose"] {
  const seen = new Set<string>();
  const publics = new Set<number>();
  return specs.map((s) => {
    const [a, b] = s.split(":");
    const guest = Number(b ?? a);
    const pub = b === undefined ? null : Number(a);
    if (seen.has(`${pub}:${guest}`)) throw new InvalidRequest(`--expose ${s} is given twice`, "expose each port once");
    if (pub !== null && publics.has(pub)) throw new InvalidRequest(`public port ${pub} is exposed twice`, "each public port forwards to one guest port");
    seen.add(`${pub}:${guest}`);
    if (pub !== null) publics.add(pub);
    return { guest_port: guest, public_port: pub };
  });
}

/** Resolve a workspace name (under `workspacesDir`, created on demand) or an absolute host directory. */
export function resolveWorkspace(value: string, workspacesDir: string): string {
  if (isAbsolute(value)) {
    if (!existsSync(value) || !statSync(value).isDirectory()) {
      throw new InvalidRequest(`workspace ${value} is not an existing directory`, "create it first, or pass a workspace name");
    }
    return value;
  }
  if (!/^[a-z0-9][a-z0-9._-]{0,62}$/.test(value)) {
    throw new InvalidRequest(`invalid workspace "${value}": use a name (lowercase letters, digits, . _ -) or an absolute path`);
  }
  const dir = join(workspacesDir, value);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  if (!st.isDirectory()) throw new InvalidRequest(`workspace ${dir} is not a directory (${st.isSymbolicLink() ? "a symbolic link" : "another file type"})`, "remove it, or use another workspace name");
  // The guest writes as the workspace's owner (vmm/virtiofsd.ts), so a named workspace belongs to
  // the owner of AEGIS_HOME, root squashed to nobody; only its top directory is (re)assigned.
  if (process.getuid?.() === 0 && st.uid === 0) {
    const owner = workspaceOwner(statSync(join(workspacesDir, "..", "..")));
    lchownSync(dir, owner.uid, owner.gid);
  }
  return dir;
}

/** Validate `rootfs_dir` (an existing directory, alone with no image, app, kit or workspace); returns it. */
export function checkRootfsDir(input: InstanceCreate): string {
  const dir = input.rootfs_dir!;
  const other = (["image", "app", "kit", "workspace", "entrypoint"] as const).find((k) => input[k] !== undefined);
  if (other) throw new InvalidRequest(`rootfs_dir cannot be combined with ${other}`, "a host-directory rootfs is the whole root filesystem: drop one of them");
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new InvalidRequest(`rootfs_dir ${dir} is not an existing directory`, "mount the container's root filesystem there first");
  return dir;
}

/**
 * Validate `netns_path` (vmm/network/pod.ts): an existing namespace file,
 * aegisd root, and nothing that needs slirp (an egress policy, exposed
 * ports). The namespace's interface is read at boot, when CNI has surely
 * set it up. Returns the path.
 */
export function checkNetnsPath(input: InstanceCreate, expose: InstanceSpec["expose"]): string {
  const path = input.netns_path!;
  if (input.network !== undefined) throw new InvalidRequest(`netns_path cannot be combined with network (--allow, --deny, --no-network)`, "a pod network's policy is CNI's (a NetworkPolicy): drop the network field");
  if (expose.length > 0) throw new InvalidRequest(`netns_path cannot be combined with expose (${expose.map((e) => e.guest_port).join(", ")})`, "a server in a VM on a pod network answers on the pod IP: drop expose and connect to the pod IP");
  const why = netnsPathProblem(path);
  if (why) throw new InvalidRequest(why, "pass the path of a network namespace CNI prepared (e.g. /var/run/netns/cni-..., /proc/PID/ns/net), with aegisd running as root");
  return path;
}

/** What the spec builder reads from. */
export interface SpecSources {
  kits: KitsService;
  apps: AppsService;
  secrets: SecretsService;
  workspacesDir: string;
  defaults: InstanceDefaults;
}

function sources(input: InstanceCreate, src: SpecSources) {
  const kit = input.kit ? src.kits.get(input.kit).manifest : null;
  const app = input.app ? src.apps.get(input.app) : null;
  const release = app ? app.releases[0] : undefined;
  if (app && !release) {
    throw new PreconditionFailed(`app "${app.name}" has no release`, `publish one first: aegis app publish ${app.name}`, { current: "unpublished", required: ["published"] });
  }
  const image = input.image ?? release?.image_digest ?? kit?.instance?.image ?? kit?.image ?? null;
  return { kit, app, release, image };
}

/** The image a new instance boots from (request, app release, kit), or null for the base rootfs. */
export function specImage(input: InstanceCreate, src: SpecSources): string | null {
  return sources(input, src).image;
}

/**
 * Build and validate the launch spec of a new instance. `image` is the
 * record of {@link specImage}'s reference (null for the base rootfs): its
 * config resolves into the stored command, env, workdir and user with
 * Docker's rules (images/process-spec.ts), as `docker create` does.
 */
export function buildSpec(input: InstanceCreate, src: SpecSources, image: ImageRecord | null = null): InstanceSpec {
  const { kit, app, release, image: ref } = sources(input, src);
  const secrets = input.secrets ?? kit?.instance?.secrets ?? [];
  const named = secrets.filter((s) => s !== "*");
  if (named.length > 0) src.secrets.resolve(named, app?.id);
  const rootfsDir = input.rootfs_dir === undefined ? null : checkRootfsDir(input);
  const run = rootfsDir !== null && !(input.command && input.command.length > 0) ? { argv: [], env: input.env ?? {}, cwd: input.workdir ?? null, user: input.user ?? null } : resolveProcess(image && { ref: ref ?? image.ref, config: imageRunConfig(image) }, {
    command: input.command ?? (app && app.command.length > 0 ? app.command : undefined) ?? kit?.instance?.command,
    entrypoint: input.entrypoint,
    workdir: input.workdir,
    user: input.user,
    env: { ...(kit?.instance?.env ?? {}), ...(input.env ?? {}) },
  });
  const expose = parseExpose(input.expose ?? app?.expose.map(String) ?? kit?.instance?.expose ?? []);
  const netnsPath = input.netns_path === undefined ? null : checkNetnsPath(input, expose);
  return {
    image: ref,
    kit: kit?.name ?? null,
    app_id: app?.id ?? null,
    release_id: release?.id ?? null,
    command: run.argv,
    workdir: run.cwd,
    user: run.user,
    secrets,
    env: run.env,
    expose,
    workspace: input.workspace ? resolveWorkspace(input.workspace, src.workspacesDir) : null,
    ...(rootfsDir !== null ? { rootfs_dir: rootfsDir } : {}),
    memory_mb: input.memory_mb ?? kit?.instance?.memory ?? src.defaults.memoryMb,
    vcpus: input.vcpus ?? kit?.instance?.cpus ?? src.defaults.vcpus,
    // A pod network VM is reached at its pod IP, traffic aegisd never sees: idle pausing would
    // freeze it with nothing to wake it, so it never pauses unless asked to.
    pause_after_s: input.pause_after_s ?? (netnsPath !== null ? 0 : src.defaults.pauseAfterS),
    stop_after_s: input.stop_after_s ?? src.defaults.stopAfterS,
    parent_id: null,
    depth: 0,
    // The kit's grant, then the request's fields over it, then the defaults.
    capabilities: SpawnCapabilities.parse({ ...(kit?.instance?.capabilities ?? {}), ...(input.capabilities ?? {}) }),
    // Like every field: the request's policy replaces the app's, which replaces the kit's.
    network: input.network ?? app?.network ?? kit?.instance?.network ?? DEFAULT_NETWORK,
    ...(netnsPath !== null ? { netns_path: netnsPath } : {}),
  };
}

/**
 * @module daemon/services
 * Wires the daemon's services over one registry database and one state
 * directory. Tests build the same graph on a temporary AEGIS_HOME.
 */
import type { Database } from "bun:sqlite";
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { StatePaths } from "../paths.ts";
import { binDir } from "../paths.ts";
import type { Backend } from "../vmm/backend.ts";
import type { Logger } from "./api/deps.ts";
import { AppsService } from "./apps/service.ts";
import { ImageStore } from "./images/index.ts";
import { ImagesService } from "./images/service.ts";
import { openDatabase } from "./db.ts";
import { EventBus } from "./events.ts";
import { KitsService } from "./kits/service.ts";
import { LogStore } from "./logs/log-store.ts";
import { AppsTable } from "./registry/apps.ts";
import { SecretsTable } from "./registry/secrets.ts";
import { TasksTable } from "./registry/tasks.ts";
import { VmsTable } from "./registry/vms.ts";
import { loadOrCreateMasterKey, SecretCipher } from "./secrets/cipher.ts";
import { SecretsService } from "./secrets/service.ts";
import { McpHost } from "./instances/mcp-host.ts";
import { InstancesService } from "./instances/service.ts";
import { imageLimitsFromEnv } from "./images/limits.ts";
import { defaultsFromEnv } from "./instances/spec.ts";
import { InstancesTable } from "./registry/instances.ts";
import { TasksService } from "./tasks/service.ts";
import { TetherService } from "./tether/service.ts";
import { TetherStore } from "./tether/store.ts";
import { VmLauncher } from "./vms.ts";

/** Find a program next to the aegis binary (role links) or on PATH. */
export function locateProgram(program: string): string | null {
  const beside = join(binDir, program);
  if (existsSync(beside)) return beside;
  return Bun.which(program);
}

/** The daemon's service graph. */
export interface Services {
  db: Database;
  /** The master-key sealer (secrets, the E2B API key and access tokens). */
  cipher: SecretCipher;
  secrets: SecretsService;
  apps: AppsService;
  kits: KitsService;
  logs: LogStore;
  images: ImagesService;
  vms: VmLauncher;
  tasks: TasksService;
  instances: InstancesService;
  tether: TetherService;
  /** State-change notifications (daemon/events.ts), for fronts such as the web UI. */
  events: EventBus;
  /** Answers the guests' `mcp.*` requests (registered on every instance VM's channel at boot). */
  mcp: McpHost;
}

/** The VM backend to use, or null with the reason none is available. */
export interface BackendChoice {
  backend: Backend | null;
  reason: string;
}

/** Open the registry and build every service. */
export function createServices(paths: StatePaths, log: Logger, choice: BackendChoice): Services {
  const db = openDatabase(paths.db);
  const events = new EventBus((err) => log.error("event subscriber failed", { error: String(err) }));
  const cipher = new SecretCipher(loadOrCreateMasterKey(paths.masterKey));
  const secrets = new SecretsService(new SecretsTable(db), cipher);
  const logs = new LogStore(paths.instances);
  const vms = new VmLauncher(paths, choice.backend, choice.reason, new VmsTable(db));
  const appsTable = new AppsTable(db);
  const images = new ImagesService(new ImageStore(paths.images, { limits: imageLimitsFromEnv() }), secrets, () => appsTable.releaseDigests());
  const apps = new AppsService(appsTable, images);
  const kits = new KitsService(paths.kits, locateProgram);
  const defaults = defaultsFromEnv();
  const instances = new InstancesService({
    table: new InstancesTable(db, events),
    logs,
    secrets,
    images,
    vms,
    apps,
    kits,
    backend: choice.backend,
    instancesDir: paths.instances,
    workspacesDir: paths.workspaces,
    defaults,
    log,
  });
  const mcp = new McpHost({ instances, images, defaults, log });
  instances.onBoot.push((id, vm) => mcp.attach(id, vm));
  images.usersOf = (image) =>
    instances
      .list()
      .filter((i) => i.image !== null && images.find(i.image)?.ref === image.ref)
      .map((i) => i.handle);
  return {
    db,
    cipher,
    events,
    secrets,
    apps,
    kits,
    instances,
    mcp,
    tether: new TetherService(new TetherStore(db), instances, logs, log),
    logs,
    images,
    vms,
    tasks: new TasksService(new TasksTable(db), logs, secrets, vms, images, log),
  };
}

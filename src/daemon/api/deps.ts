/**
 * @module daemon/api/deps
 * What the HTTP layer needs from the daemon: services and a logger. The Hono
 * app is a pure factory over these (STYLE rule 9).
 */
import type { E2bEnv } from "../../api/schema/e2b.ts";
import type { Status } from "../../api/schema/status.ts";
import type { AppsService } from "../apps/service.ts";
import type { ImagesService } from "../images/service.ts";
import type { InstancesService } from "../instances/service.ts";
import type { KitsService } from "../kits/service.ts";
import type { LogStore } from "../logs/log-store.ts";
import type { SecretsService } from "../secrets/service.ts";
import type { TasksService } from "../tasks/service.ts";
import type { TetherService } from "../tether/service.ts";

/** Minimal structured logger the daemon writes to `data/aegisd.log`. */
export interface Logger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** Services behind the routes. */
export interface ApiDeps {
  status(): Status;
  secrets: SecretsService;
  apps: AppsService;
  kits: KitsService;
  tasks: TasksService;
  images: ImagesService;
  instances: InstancesService;
  tether: TetherService;
  logs: LogStore;
  log: Logger;
  /** The E2B front's settings (`aegis e2b env`); absent when the front is not running. */
  e2bEnv?: () => E2bEnv;
}

/**
 * @module daemon/apps/service
 * Apps: create, resolve by name or id, list, delete. Publishing releases and
 * serving come with images and instances.
 */
import { randomBytes } from "node:crypto";
import { Conflict, NotFound } from "../../api/errors.ts";
import type { App, AppCreate } from "../../api/schema/apps.ts";
import type { AppsTable } from "../registry/apps.ts";

/** A new resource id: prefix, milliseconds since the epoch in hex, and random bits. */
export function newId(prefix: string): string {
  return `${prefix}-${Date.now().toString(16)}${randomBytes(4).toString("hex")}`;
}

/** App lifecycle and lookup. */
export class AppsService {
  constructor(
    private readonly table: AppsTable,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  /** Create an app; Conflict when the name is taken. */
  create(input: AppCreate): App {
    if (this.table.find(input.name)) {
      throw new Conflict(`app "${input.name}" already exists`, `pick another --name, or 'aegis app delete ${input.name}' first`);
    }
    const app = { id: newId("app"), ...input, created_at: this.clock().toISOString() };
    this.table.insert(app);
    return { ...app, releases: [] };
  }

  /** Resolve a name or id; NotFound otherwise. */
  get(ref: string): App {
    const app = this.table.find(ref);
    if (!app) throw new NotFound(`app "${ref}" not found`, "list apps with 'aegis app list'");
    return app;
  }

  /** Every app. */
  list(): App[] {
    return this.table.list();
  }

  /** Delete an app with its releases and secrets. */
  delete(ref: string): App {
    const app = this.get(ref);
    this.table.delete(app.id);
    return app;
  }
}

/**
 * @module daemon/kits/service
 * Installed kits. The kit directory `AEGIS_HOME/kits/NAME.json` is the record
 * (the spec says the manifest lands there, and `make install-kit` relies on
 * it): each file holds the validated manifest and the install time, written
 * atomically (temp file + rename) so a crash never leaves half a kit.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { NotFound } from "../../api/errors.ts";
import { type Kit, KitManifest } from "../../api/schema/kits.ts";

const KitFile = z.object({ manifest: KitManifest, installed_at: z.string() });

/** Whether a program is available: next to the aegis binary or on PATH. */
export type ProgramLocator = (program: string) => string | null;

/** Kit install, list, info, uninstall. */
export class KitsService {
  /** Called after a kit is installed or uninstalled (the daemon supervisor re-syncs). */
  readonly onChange: (() => void)[] = [];

  constructor(
    private readonly dir: string,
    private readonly locate: ProgramLocator,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  private file(name: string): string {
    return join(this.dir, `${name}.json`);
  }

  /** Install or upgrade a kit from a validated manifest. */
  install(manifest: KitManifest): Kit {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const record = { manifest, installed_at: this.clock().toISOString() };
    const tmp = `${this.file(manifest.name)}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
    renameSync(tmp, this.file(manifest.name));
    for (const hook of this.onChange) hook();
    return this.withStatus(record);
  }

  /** Every installed kit, by name. Unreadable files are reported as a broken status, not hidden. */
  list(): Kit[] {
    if (!existsSync(this.dir)) return [];
    return readdirSync(this.dir)
      .filter((f) => f.endsWith(".json"))
      .sort()
      .map((f) => this.read(f.slice(0, -5)));
  }

  /** One kit; NotFound when absent. */
  get(name: string): Kit {
    if (!existsSync(this.file(name))) throw new NotFound(`kit "${name}" is not installed`, "list installed kits with 'aegis kit list'");
    return this.read(name);
  }

  /** Remove a kit; NotFound when absent. */
  uninstall(name: string): void {
    this.get(name);
    rmSync(this.file(name));
    for (const hook of this.onChange) hook();
  }

  private read(name: string): Kit {
    const raw = readFileSync(this.file(name), "utf8");
    const parsed = KitFile.safeParse(JSON.parse(raw));
    if (!parsed.success) {
      return {
        manifest: { name, version: "?", image: "?" },
        installed_at: "",
        status: `broken: ${this.file(name)} is not a valid kit record`,
      };
    }
    return this.withStatus(parsed.data);
  }

  private withStatus(record: z.infer<typeof KitFile>): Kit {
    const missing = (record.manifest.daemons ?? []).map((d) => d.command[0]!).filter((p) => this.locate(p) === null);
    return { ...record, status: missing.length === 0 ? "ok" : `missing ${missing.join(", ")}` };
  }
}

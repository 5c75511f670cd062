/**
 * @module paths
 * Every filesystem location Aegis uses, derived from `AEGIS_HOME`, plus how to
 * re-execute this program in another role. This is the only module that reads
 * `import.meta` (STYLE rule 23): in a compiled binary `import.meta.*` points into
 * Bun's virtual filesystem, so everything else asks here.
 */
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";

/** True when running as the `bun build --compile` executable rather than `bun src/main.ts`. */
export const isCompiled = import.meta.path.startsWith("/$bunfs/") || import.meta.path.includes("~BUN");

/** The repository root when running from source (used for dev-mode self-spawn and build assets). */
export const sourceRoot = resolve(import.meta.dir, "..");

/** Absolute path of the executable currently running (the compiled `aegis`, or `bun` in dev). */
export const selfExe = process.execPath;

/**
 * The argv prefix that re-runs this program in the given hidden role, e.g.
 * `[".../aegis", "__daemon"]`. In dev mode the source entry point is added so
 * `bun src/main.ts __daemon` behaves like the compiled binary.
 */
export function selfCommand(role: string): string[] {
  return isCompiled ? [selfExe, role] : [selfExe, join(sourceRoot, "src", "main.ts"), role];
}

/** Root of all Aegis state: `AEGIS_HOME`, default `~/.aegis`. */
export function aegisHome(): string {
  const fromEnv = process.env.AEGIS_HOME;
  return fromEnv && fromEnv.length > 0 ? resolve(fromEnv) : join(homedir(), ".aegis");
}

/** The state layout of DESIGN.md section 3, computed for one `AEGIS_HOME`. */
export function statePaths(home = aegisHome()) {
  const data = join(home, "data");
  return {
    home,
    socket: join(home, "aegisd.sock"),
    data,
    pidFile: join(data, "aegisd.pid"),
    db: join(data, "aegis.db"),
    masterKey: join(data, "master.key"),
    daemonLog: join(data, "aegisd.log"),
    workspaces: join(data, "workspaces"),
    images: join(home, "images"),
    instances: join(home, "instances"),
    guest: join(home, "guest"),
    kits: join(home, "kits"),
    gatewayConfig: join(home, "gateway.json"),
  } as const;
}

/** The resolved layout type. */
export type StatePaths = ReturnType<typeof statePaths>;

/** Directory that holds the running executable (where `aegisd` and friends are linked). */
export const binDir = dirname(selfExe);

/**
 * @module vmm/assets/debian-package
 * Where `aegis setup` gets the Debian packages the guest is made of (the
 * cloud kernel and, when the host has no static busybox, busybox-static).
 * `AEGIS_DEBIAN_FETCH` chooses:
 * - `apt`: `apt-cache depends` / `apt-get download` (apt verifies; the fast
 *   path on Debian hosts, using the host's sources and proxy settings);
 * - `http`: our own verified fetch from a Debian mirror ({@link DebianArchive});
 * - `auto` (default): apt when `apt-get` exists and `AEGIS_DEBIAN_MIRROR` is
 *   not set, falling back to http when apt cannot resolve the package (no
 *   lists, not Debian).
 * Either way the .deb is unpacked by {@link unpackDeb}, not dpkg.
 */
import { readdirSync } from "node:fs";
import { archiveConfig, DebianArchive } from "./debian-archive.ts";
import { run } from "./exec.ts";

/** A package located in a source, ready to download. */
export interface Located {
  name: string;
  /** The .deb's file name, unique per name+version+arch: a cache key. */
  filename: string;
  /** Download the .deb into `dir`; returns its path. */
  fetch(dir: string): Promise<string>;
}

/** A way to resolve and fetch Debian packages. */
export interface PackageSource {
  kind: "apt" | "http";
  /** The concrete package a metapackage depends on (first alternative of its first Depends). */
  dependencyOf(meta: string, prefix: string): Promise<string>;
  locate(name: string): Promise<Located>;
}

/** The `AEGIS_DEBIAN_FETCH` mode. */
export function fetchMode(env = process.env): "auto" | "apt" | "http" {
  const m = env.AEGIS_DEBIAN_FETCH || "auto";
  if (m !== "auto" && m !== "apt" && m !== "http") throw new Error(`AEGIS_DEBIAN_FETCH=${m}: expected auto, apt or http`);
  return m;
}

/** First `Depends:` of `apt-cache depends` output that starts with `prefix`. */
export function parseAptDepends(text: string, prefix: string): string | undefined {
  for (const m of text.matchAll(/^\s*\|?Depends:\s*([^\s<>:]+)/gm)) if (m[1]!.startsWith(prefix)) return m[1];
  return undefined;
}

/** The first package named in a Depends field that starts with `prefix` (`"linux-image-6.1.0-57-cloud-amd64 (= 6.1.192-3)"`). */
export function firstDependency(depends: string, prefix: string): string | undefined {
  for (const alt of depends.split(/[,|]/)) {
    const name = alt.trim().split(/[\s(:]/)[0]!;
    if (name.startsWith(prefix)) return name;
  }
  return undefined;
}

function aptSource(debArch: string): PackageSource {
  // apt-get needs `name:arch` for a foreign architecture only.
  const qualified = (name: string) => (debArch === (process.arch === "arm64" ? "arm64" : "amd64") ? name : `${name}:${debArch}`);
  return {
    kind: "apt",
    async dependencyOf(meta, prefix) {
      const dep = parseAptDepends(await run(["apt-cache", "depends", qualified(meta)]), prefix);
      if (!dep) throw new Error(`apt-cache depends ${meta} names no ${prefix}* package\nhint: run apt-get update, or set AEGIS_DEBIAN_FETCH=http`);
      return dep;
    },
    async locate(name) {
      const uris = await run(["apt-get", "download", "--print-uris", qualified(name)]);
      const filename = uris.match(/^'[^']+' (\S+\.deb) \d+ /m)?.[1];
      if (!filename) throw new Error(`apt-get download --print-uris ${name} printed no .deb`);
      return {
        name,
        filename,
        async fetch(dir) {
          await run(["apt-get", "download", qualified(name)], { cwd: dir });
          const deb = readdirSync(dir).find((f) => f.endsWith(".deb"));
          if (!deb) throw new Error(`apt-get download ${name} produced no .deb`);
          return `${dir}/${deb}`;
        },
      };
    },
  };
}

function httpSource(debArch: string, cacheDir: string, progress: (msg: string) => void): PackageSource {
  const archive = new DebianArchive(archiveConfig(debArch, cacheDir), progress);
  return {
    kind: "http",
    async dependencyOf(meta, prefix) {
      const pkg = await archive.find(meta);
      const dep = firstDependency(pkg.depends, prefix);
      if (!dep) throw new Error(`${meta} ${pkg.version} (${pkg.source.suite}) depends on no ${prefix}* package`);
      return dep;
    },
    async locate(name) {
      const pkg = await archive.find(name);
      progress(`${name} ${pkg.version} from ${pkg.source.suite}`);
      return { name, filename: pkg.filename, fetch: (dir) => archive.download(pkg, dir) };
    },
  };
}

/**
 * The package source for this host (see the module docs). In `auto` mode
 * the returned source tries apt first and switches to http for good when
 * apt fails to resolve.
 */
export function packageSource(opts: { debArch: string; cacheDir: string; progress: (msg: string) => void; env?: NodeJS.ProcessEnv }): PackageSource {
  const env = opts.env ?? process.env;
  const mode = fetchMode(env);
  const http = () => httpSource(opts.debArch, opts.cacheDir, opts.progress);
  if (mode === "http") return http();
  if (mode === "apt") return aptSource(opts.debArch);
  if (env.AEGIS_DEBIAN_MIRROR || !Bun.which("apt-get") || !Bun.which("apt-cache")) return http();
  const apt = aptSource(opts.debArch);
  let current: PackageSource = apt;
  const fallback = async <T>(f: (s: PackageSource) => Promise<T>): Promise<T> => {
    if (current.kind === "http") return f(current);
    try {
      return await f(current);
    } catch (err) {
      opts.progress(`apt could not help (${err instanceof Error ? err.message.split("\n")[0] : String(err)}); fetching from the Debian mirror instead`);
      current = http();
      return f(current);
    }
  };
  return {
    get kind() {
      return current.kind;
    },
    dependencyOf: (meta, prefix) => fallback((s) => s.dependencyOf(meta, prefix)),
    locate: (name) => fallback((s) => s.locate(name)),
  };
}

/**
 * @module test/helpers/debian-image-recipe
 * The recipe of the Debian bookworm test image: debootstrap (minbase) into an
 * umoci bundle, slimmed, repacked as tag `bookworm`; `app` and `server` are
 * each one more layer on top of it. Every line of this file is part of the
 * cache key ({@link recipeKey}), so editing the recipe rebuilds the image.
 * Needs root (debootstrap, chroot, ownership in the layers) and the
 * packages debootstrap, umoci (installed by `make deps`).
 *
 * What is changed from a plain debootstrap, and why:
 * - apt caches/lists, /usr/share/{doc (but copyright),man,info,locale}, logs
 *   and `*-old` files are removed: size only, like the official slim images.
 * - /etc/resolv.conf and /etc/hostname are removed: debootstrap copies the
 *   build machine's, which mean nothing in a guest (the runtime provides them,
 *   as Docker does by bind mounts).
 * - /dev is left empty: debootstrap's device nodes belong to the runtime
 *   (official images ship none either).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync, chownSync } from "node:fs";
import { join } from "node:path";

/** PATH of the official debian image. */
export const DEBIAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** The tags the recipe produces, in build order. */
export const DEBIAN_TAGS = ["bookworm", "app", "server"] as const;
/** One of {@link DEBIAN_TAGS}. */
export type DebianTag = (typeof DEBIAN_TAGS)[number];

/** Cache key: a hash of this file's text (the recipe) and the architecture. */
export function recipeKey(): string {
  const h = new Bun.CryptoHasher("sha256").update(readFileSync(import.meta.path)).update(process.arch);
  return h.digest("hex").slice(0, 16);
}

/**
 * The bookworm mirror apt uses on this machine (one-line or deb822 sources),
 * so the build reaches whatever archive the machine is allowed to reach;
 * `AEGIS_TEST_DEBIAN_MIRROR` overrides, `http://deb.debian.org/debian` is the fallback.
 */
export function aptMirror(env = process.env): string {
  if (env.AEGIS_TEST_DEBIAN_MIRROR) return env.AEGIS_TEST_DEBIAN_MIRROR;
  const files = ["/etc/apt/sources.list"];
  const d = "/etc/apt/sources.list.d";
  if (existsSync(d)) files.push(...readdirSync(d).filter((f) => /\.(list|sources)$/.test(f)).map((f) => join(d, f)));
  for (const f of files.filter(existsSync)) {
    const text = readFileSync(f, "utf8");
    for (const line of text.split("\n")) {
      const m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\s/.exec(line.trim());
      if (m) return m[1]!.replace(/\/$/, "");
    }
    for (const stanza of text.split(/\n\s*\n/)) {
      const field = (k: string) => new RegExp(`^${k}:\\s*(.+)$`, "im").exec(stanza)?.[1]?.trim().split(/\s+/) ?? [];
      if (field("Types").includes("deb") && field("Suites").includes("bookworm")) {
        const uri = field("URIs")[0];
        if (uri) return uri.replace(/\/$/, "");
      }
    }
  }
  return "http://deb.debian.org/debian";
}

/** Runs one build command; throws (with its stderr tail) unless it exits 0. */
type Run = (argv: string[], env?: Record<string, string>) => Promise<void>;

/**
 * A {@link Run} that appends each command's output to `log` and hands every
 * command the build lock's fd (as fd 3), so a build orphaned by our death
 * still holds the lock until its commands end.
 */
function runner(log: string, lockFd?: number): Run {
  return async (argv, env = { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C" }) => {
    const stdio: ["ignore", "pipe", "pipe", ...number[]] = ["ignore", "pipe", "pipe", ...(lockFd === undefined ? [] : [lockFd])];
    const p = Bun.spawn(argv, { stdio, env });
    const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    writeFileSync(log, `$ ${argv.join(" ")}\n${out}${err}`, { flag: "a" });
    if (code !== 0) throw new Error(`${argv.join(" ")} exited ${code}:\n${(err || out).slice(-2000)}\n(full log: ${log})`);
  };
}

/** Environment for commands run inside the rootfs with chroot. */
const CHROOT_ENV = { PATH: DEBIAN_PATH, LANG: "C", DEBIAN_FRONTEND: "noninteractive", HOME: "/root" };

/** Remove everything in `dir` (but `dir` itself) except names `keep` accepts. */
function emptyDir(dir: string, keep: (name: string) => boolean = () => false): void {
  if (!existsSync(dir)) return;
  for (const n of readdirSync(dir)) if (!keep(n)) rmSync(join(dir, n), { recursive: true, force: true });
}

/** Make a rootfs small (see the module doc for what goes and why). */
function slim(root: string): void {
  emptyDir(join(root, "var/cache/apt"));
  emptyDir(join(root, "var/lib/apt/lists"));
  for (const pkg of readdirSync(join(root, "usr/share/doc"))) emptyDir(join(root, "usr/share/doc", pkg), (n) => n === "copyright");
  for (const d of ["usr/share/man", "usr/share/info", "usr/share/locale", "dev", "tmp", "var/log/apt"]) emptyDir(join(root, d));
  emptyDir(join(root, "var/log"), (n) => !n.endsWith(".log"));
  for (const d of ["var/cache/debconf", "var/lib/dpkg"]) emptyDir(join(root, d), (n) => !n.endsWith("-old"));
  for (const f of ["etc/resolv.conf", "etc/hostname", "var/cache/ldconfig/aux-cache"]) rmSync(join(root, f), { force: true });
}

/** `umoci unpack` TAG of `layout` into a fresh bundle `dir`; returns its rootfs. */
async function unpack(run: Run, layout: string, tag: string, dir: string): Promise<string> {
  await run(["umoci", "unpack", "--image", `${layout}:${tag}`, dir]);
  return join(dir, "rootfs");
}

/** `umoci repack` the bundle as `tag`, then drop the bundle. */
async function repack(run: Run, layout: string, tag: string, dir: string, createdBy: string): Promise<void> {
  await run(["umoci", "repack", "--history.created_by", createdBy, "--image", `${layout}:${tag}`, dir]);
  rmSync(dir, { recursive: true, force: true });
}

/** `umoci config` of `tag` with repeated `--config.KEY value` pairs. */
async function config(run: Run, layout: string, tag: string, args: [string, string][]): Promise<void> {
  await run(["umoci", "config", ...args.flatMap(([k, v]) => [`--config.${k}`, v]), "--image", `${layout}:${tag}`]);
}

/**
 * Build the OCI layout `<work>/oci` with the tags of {@link DEBIAN_TAGS}.
 * `work` is a fresh directory; `<work>/build.log` gets every command's output.
 * `lock` is an fd every command inherits (see debian-image.ts).
 */
export async function buildDebianLayout(work: string, mirror: string, lock?: number): Promise<void> {
  const oci = join(work, "oci");
  const run = runner(join(work, "build.log"), lock);
  await run(["umoci", "init", "--layout", oci]);
  await run(["umoci", "new", "--image", `${oci}:bookworm`]);

  // bookworm: debootstrap straight into the bundle of the empty image, so the repack diff is the whole rootfs.
  let root = await unpack(run, oci, "bookworm", join(work, "b-base"));
  await run(["debootstrap", "--variant=minbase", "bookworm", root, mirror]);
  // The package lists debootstrap fetched are kept aside for the server layer's apt-get (no second download of the index).
  const lists = join(work, "apt-lists");
  renameSync(join(root, "var/lib/apt/lists"), lists);
  mkdirSync(join(root, "var/lib/apt/lists/partial"), { recursive: true });
  slim(root);
  await repack(run, oci, "bookworm", join(work, "b-base"), `debootstrap --variant=minbase bookworm ${mirror}`);
  await config(run, oci, "bookworm", [["env", `PATH=${DEBIAN_PATH}`], ["cmd", "bash"]]);

  // app: a non-root user with supplementary groups, a working directory it owns, ENV, ENTRYPOINT + CMD.
  root = await unpack(run, oci, "bookworm", join(work, "b-app"));
  for (const argv of [
    ["groupadd", "-g", "1500", "extra"],
    ["groupadd", "-g", "1000", "app"],
    ["useradd", "-u", "1000", "-g", "app", "-G", "audio,extra", "-m", "-d", "/home/app", "-s", "/bin/bash", "app"],
  ])
    await run(["chroot", root, ...argv], CHROOT_ENV);
  mkdirSync(join(root, "srv/app"), { recursive: true });
  writeFileSync(join(root, "srv/app/hello.txt"), "hello from /srv/app\n");
  for (const p of ["srv/app", "srv/app/hello.txt"]) chownSync(join(root, p), 1000, 1000);
  slim(root);
  await repack(run, oci, "app", join(work, "b-app"), "useradd app (1000:1000, groups audio,extra); /srv/app");
  await config(run, oci, "app", [
    ["user", "app"],
    ["workingdir", "/srv/app"],
    ["env", "GREETING=hello from the image"],
    ["entrypoint", "/bin/echo"],
    ["entrypoint", "entry"],
    ["cmd", "default"],
    ["cmd", "cmd"],
  ]);

  // server: Debian's busybox package (not in minbase) for `busybox httpd` on 8080.
  root = await unpack(run, oci, "bookworm", join(work, "b-server"));
  rmSync(join(root, "var/lib/apt/lists"), { recursive: true, force: true });
  renameSync(lists, join(root, "var/lib/apt/lists"));
  writeFileSync(join(root, "etc/resolv.conf"), readFileSync("/etc/resolv.conf"));
  await run(["chroot", root, "apt-get", "install", "-y", "-q", "--no-install-recommends", "busybox"], CHROOT_ENV);
  mkdirSync(join(root, "srv/www"), { recursive: true });
  writeFileSync(join(root, "srv/www/index.html"), "hello from the debian server image\n");
  slim(root);
  await repack(run, oci, "server", join(work, "b-server"), "apt-get install busybox; /srv/www/index.html");
  await config(run, oci, "server", [["exposedports", "8080/tcp"], ["cmd", "busybox"], ["cmd", "httpd"], ["cmd", "-f"], ["cmd", "-p"], ["cmd", "8080"], ["cmd", "-h"], ["cmd", "/srv/www"]]);

  await run(["umoci", "gc", "--layout", oci]);
}

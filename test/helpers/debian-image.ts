/**
 * @module test/helpers/debian-image
 * A real Debian bookworm OCI image for tests, built from Debian's archive
 * with debootstrap and umoci (recipe: ./debian-image-recipe.ts) and pushed
 * with skopeo to a test's own registry (./registry.ts).
 *
 * Tags (all linux/amd64 on this machine's arch, sharing the bookworm layer):
 * - `bookworm`: debootstrap --variant=minbase, slimmed. Env PATH as in the
 *   official image, Cmd ["bash"]. GNU coreutils, dash as /bin/sh, bash, `id`.
 * - `app`: + user `app` 1000:1000 (groups audio(29), extra(1500); home
 *   /home/app), /srv/app owned by it (with hello.txt). User "app",
 *   WorkingDir /srv/app, Env += GREETING=hello from the image,
 *   Entrypoint ["/bin/echo","entry"], Cmd ["default","cmd"].
 * - `server`: + Debian's busybox; /srv/www/index.html; ExposedPorts
 *   8080/tcp, Cmd ["busybox","httpd","-f","-p","8080","-h","/srv/www"].
 *
 * Cost: the first build on a machine takes about 2-3 minutes (110-152 s
 * measured on the 2-core dev VM; nearly all of it debootstrap downloading
 * and unpacking ~30 MB of packages). The layout is ~30.5 MB on disk: the
 * bookworm layer is 30 MB gzip (74 MB unpacked, 4240 entries, hardlinks
 * included), app's layer a few KB, server's 0.5 MB. Later runs reuse it at once.
 *
 * Cache: `~/.cache/aegis/test-images/debian-<key>/oci` (base as for guest
 * kernels: `$AEGIS_CACHE`, else `$XDG_CACHE_HOME/aegis`), where <key> hashes
 * the recipe file, so a recipe change builds a new one. Building needs root
 * (CI is root) plus debootstrap, umoci, skopeo (`make deps`); using a built
 * cache needs only skopeo. Concurrent test processes serialise on an flock
 * of `debian.lock`, held by the building process and every command it runs
 * (released by the kernel when the last of them ends); a build goes
 * to a temp dir renamed into place only when complete, so a crashed build
 * leaves nothing that looks usable. Force a rebuild with
 * `AEGIS_TEST_IMAGES_REBUILD=1` or by deleting the `debian-*` directories.
 */
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { kernelCacheDir } from "../../src/vmm/assets/kernel.ts";
import { aptMirror, buildDebianLayout, DEBIAN_TAGS, recipeKey, type DebianTag } from "./debian-image-recipe.ts";

export { DEBIAN_PATH, DEBIAN_TAGS, type DebianTag } from "./debian-image-recipe.ts";

/** A built (cached) Debian test image. */
export interface DebianImage {
  /** OCI image layout directory (read-only: shared by every test process). */
  layout: string;
  /** Recipe hash the cache entry is keyed by. */
  key: string;
  /** Manifest digest of each tag, from the layout's index.json. */
  manifests: Record<DebianTag, string>;
  /** Facts recorded when it was built. */
  built: { seconds: number; bytes: number; mirror: string; at: string };
}

/** Where the test images are cached on this machine. */
export function testImageCacheDir(env = process.env): string {
  return join(dirname(kernelCacheDir(env)), "test-images");
}

/**
 * Take an exclusive flock on `file` and return its open fd. flock(1) locks
 * the open file description it shares with us, so the lock lasts while any
 * holder of that fd lives: pass it to the build's commands and a build
 * orphaned by our death (SIGKILL) keeps it until its last command ends.
 */
async function lock(file: string, waitingNote: string): Promise<number> {
  const fd = openSync(file, "a", 0o600);
  const p = Bun.spawn(["flock", "-x", "-w", "1800", "3"], { stdio: ["ignore", "ignore", "pipe", fd] });
  const note = setTimeout(() => process.stderr.write(`${waitingNote}\n`), 2000);
  const [code, err] = await Promise.all([p.exited, new Response(p.stderr).text()]);
  clearTimeout(note);
  if (code !== 0) {
    closeSync(fd);
    throw new Error(`flock ${file} failed (exit ${code}${code === 1 ? ": still held after 30 minutes" : ""}): ${err}`);
  }
  return fd;
}

/** Unmount anything mounted under `dir` (a killed debootstrap leaves proc/sys mounted), then delete it. */
async function removeBuildDir(dir: string): Promise<void> {
  const mounts = readFileSync("/proc/self/mounts", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[1]?.replace(/\\040/g, " "))
    .filter((m): m is string => !!m && m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) {
    const u = Bun.spawnSync(["umount", "-l", m], { stderr: "pipe" });
    if (u.exitCode !== 0) throw new Error(`cannot unmount ${m} left by a crashed build (${u.stderr.toString().trim()}); unmount it, then delete ${dir}`);
  }
  rmSync(dir, { recursive: true, force: true });
}

function dirBytes(dir: string): number {
  const du = Bun.spawnSync(["du", "-sb", dir], { stderr: "pipe" });
  if (du.exitCode !== 0) throw new Error(`du -sb ${dir}: ${du.stderr.toString()}`);
  return Number(du.stdout.toString().split("\t")[0]);
}

function readImage(dir: string, key: string): DebianImage {
  const layout = join(dir, "oci");
  const index = JSON.parse(readFileSync(join(layout, "index.json"), "utf8")) as { manifests: { digest: string; annotations?: Record<string, string> }[] };
  const manifests = {} as Record<DebianTag, string>;
  for (const tag of DEBIAN_TAGS) {
    const m = index.manifests.find((d) => d.annotations?.["org.opencontainers.image.ref.name"] === tag);
    if (!m) throw new Error(`${layout} has no tag ${tag}: delete ${dir} to rebuild it`);
    manifests[tag] = m.digest;
  }
  return { layout, key, manifests, built: JSON.parse(readFileSync(join(dir, "built.json"), "utf8")) };
}

function need(tools: string[]): void {
  const missing = tools.filter((t) => !Bun.which(t, { PATH: `${process.env.PATH ?? ""}:/usr/sbin:/sbin` }));
  if (missing.length) throw new Error(`the Debian test image needs ${missing.join(", ")}: run 'make deps' (apt-get install ${missing.join(" ")})`);
}

/** The Debian test image, built on first use on this machine (see the module doc). */
export async function debianImage(env = process.env): Promise<DebianImage> {
  const key = recipeKey();
  const cache = testImageCacheDir(env);
  const dir = join(cache, `debian-${key}`);
  const rebuild = env.AEGIS_TEST_IMAGES_REBUILD === "1";
  if (existsSync(dir) && !rebuild) return readImage(dir, key);
  const builtFile = join(dir, "built.json");
  const seen = existsSync(builtFile) ? readFileSync(builtFile, "utf8") : null;
  need(["flock"]);
  mkdirSync(cache, { recursive: true });
  const lockFd = await lock(join(cache, "debian.lock"), `waiting for another process building the Debian test image in ${cache}`);
  try {
    // Another process may have built it while we waited (a rebuild it forced counts as ours).
    if (existsSync(builtFile) && (!rebuild || readFileSync(builtFile, "utf8") !== seen)) return readImage(dir, key);
    need(["debootstrap", "umoci", "chroot"]);
    if (process.getuid?.() !== 0) throw new Error(`building the Debian test image needs root (debootstrap, chroot, file ownership); run the tests as root once to fill ${cache}`);
    // We hold the lock, so every temp dir is a dead build's leftovers.
    for (const n of readdirSync(cache)) if (n.startsWith("debian-") && n.includes(".tmp-")) await removeBuildDir(join(cache, n));
    const tmp = join(cache, `debian-${key}.tmp-${process.pid}`);
    mkdirSync(tmp);
    const mirror = aptMirror(env);
    process.stderr.write(`building the Debian test image (debootstrap from ${mirror}, about 2-3 minutes) in ${tmp}\n`);
    const t0 = performance.now();
    await buildDebianLayout(tmp, mirror, lockFd);
    const built = { seconds: Math.round((performance.now() - t0) / 100) / 10, bytes: dirBytes(join(tmp, "oci")), mirror, at: new Date().toISOString() };
    writeFileSync(join(tmp, "built.json"), `${JSON.stringify(built, null, 2)}\n`);
    process.stderr.write(`built the Debian test image in ${built.seconds}s, ${(built.bytes / 1e6).toFixed(1)} MB\n`);
    if (existsSync(dir)) renameSync(dir, `${dir}.tmp-old-${process.pid}`);
    renameSync(tmp, dir);
    rmSync(`${dir}.tmp-old-${process.pid}`, { recursive: true, force: true });
    return readImage(dir, key);
  } finally {
    closeSync(lockFd);
  }
}

/** Push `tags` of the image with skopeo to `host` (`127.0.0.1:PORT`, plain HTTP) as `<repo>:<tag>`; returns the refs. */
export async function pushDebianImage(image: DebianImage, host: string, repo = "debian", tags: readonly DebianTag[] = DEBIAN_TAGS): Promise<Record<DebianTag, string>> {
  need(["skopeo"]);
  const refs = {} as Record<DebianTag, string>;
  for (const tag of tags) {
    const ref = `${host}/${repo}:${tag}`;
    // --insecure-policy: the source is our own layout, not something to verify signatures of; no dependence on the machine's policy.json.
    const argv = ["skopeo", "--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false", `oci:${image.layout}:${tag}`, `docker://${ref}`];
    const p = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
    const [, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    if (code !== 0) throw new Error(`${argv.join(" ")} exited ${code}: ${err}`);
    refs[tag] = ref;
  }
  return refs;
}

/**
 * @module daemon/images/rootfs
 * One read-only ext4 root filesystem per image, keyed by the image's config
 * digest: `<imagesDir>/rootfs/<hex>.ext4` (hex only: a ':' in a file name
 * confuses QEMU's -drive parser). Built by unpacking the layers into a temp
 * tree, `mkfs.ext4 -d` from it (no root needed), then a debugfs pass that
 * sets the recorded uid/gid/mode and creates device nodes (rootfs-fixup.ts),
 * and an atomic rename. Concurrent requests for the same image build it once:
 * an in-process promise map, plus a lock file across processes.
 */
import { existsSync, lstatSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, truncateSync, closeSync, openSync } from "node:fs";
import { join } from "node:path";
import { BackendError } from "../../api/errors.ts";
import { digestHex } from "./digest.ts";
import { acquireLock } from "./lock.ts";
import type { ImageRunConfig } from "../../api/schema/images.ts";
import type { ImageConfig } from "./manifest.ts";
import { fixupScript, runDebugfs } from "./rootfs-fixup.ts";
import { type LayerInput, type UnpackLimits, unpackLayers } from "./unpack.ts";
import type { UnpackedTree } from "./unpack-tree.ts";

/** Directories the guest mounts over; created (0755, /tmp 1777) when an image lacks them. */
export const MOUNT_POINTS: Record<string, number> = { proc: 0o555, sys: 0o555, dev: 0o755, tmp: 0o1777, run: 0o755, workspace: 0o755 };

/** The image config's run fields as the image record keeps them. */
export function runConfig(config: ImageConfig): ImageRunConfig {
  const c = config.config ?? {};
  const nonEmpty = (v: string | null | undefined) => (v && v.length > 0 ? v : null);
  return {
    entrypoint: c.Entrypoint && c.Entrypoint.length > 0 ? c.Entrypoint : null,
    cmd: c.Cmd && c.Cmd.length > 0 ? c.Cmd : null,
    env: c.Env ?? [],
    working_dir: nonEmpty(c.WorkingDir),
    user: nonEmpty(c.User),
    exposed_ports: Object.keys(c.ExposedPorts ?? {}),
    stop_signal: nonEmpty(c.StopSignal),
    labels: c.Labels ?? {},
  };
}

/** Progress of a build. */
export type RootfsProgress = { phase: "unpack"; layer: string; index: number } | { phase: "rootfs"; bytes?: number };

/** Options of {@link RootfsBuilder}. */
export interface RootfsOptions {
  limits?: Partial<UnpackLimits>;
  /** Free space added to the content estimate (default 32 MiB). */
  headroomBytes?: number;
}

/** Bytes the tree needs on ext4 with 4 KiB blocks, and its inode count. */
function measure(tree: UnpackedTree): { bytes: number; inodes: number } {
  let bytes = 0;
  const seen = new Set<string>();
  for (const key of tree.meta.keys()) {
    const st = lstatSync(join(tree.root, key));
    const ino = `${st.dev}:${st.ino}`;
    if (seen.has(ino)) continue;
    seen.add(ino);
    bytes += st.isDirectory() ? 4096 : Math.ceil(st.size / 4096) * 4096;
  }
  return { bytes, inodes: seen.size };
}

async function mkfs(tree: string, out: string, sizeBytes: number, inodes: number): Promise<string | null> {
  closeSync(openSync(out, "w", 0o644));
  truncateSync(out, sizeBytes);
  const argv = ["mkfs.ext4", "-q", "-F", "-t", "ext4", "-b", "4096", "-I", "256", "-N", String(inodes), "-m", "0", "-O", "^has_journal", "-L", "aegis-root", "-E", "root_owner=0:0", "-d", tree, out];
  const proc = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return code === 0 ? null : `${stdout}${stderr}`.trim() || `exit ${code}`;
}

/** Builds and caches ext4 root filesystems. */
export class RootfsBuilder {
  readonly dir: string;
  private readonly tmpDir: string;
  private readonly building = new Map<string, Promise<string>>();
  /** Number of builds this process actually ran (not served from cache); for tests and metrics. */
  builds = 0;

  constructor(
    imagesDir: string,
    private readonly opts: RootfsOptions = {},
  ) {
    this.dir = join(imagesDir, "rootfs");
    this.tmpDir = join(imagesDir, "tmp");
    mkdirSync(this.dir, { recursive: true });
    mkdirSync(this.tmpDir, { recursive: true });
  }

  /** Where the ext4 file for an image config digest lives. */
  path(configDigest: string): string {
    return join(this.dir, `${digestHex(configDigest)}.ext4`);
  }

  /** The ext4 for this image, building it once if missing. */
  ensure(configDigest: string, layers: LayerInput[], progress?: (e: RootfsProgress) => void): Promise<string> {
    const final = this.path(configDigest);
    if (existsSync(final)) return Promise.resolve(final);
    const running = this.building.get(configDigest);
    if (running) return running;
    const p = this.buildLocked(configDigest, layers, progress).finally(() => this.building.delete(configDigest));
    this.building.set(configDigest, p);
    return p;
  }

  private async buildLocked(configDigest: string, layers: LayerInput[], progress?: (e: RootfsProgress) => void): Promise<string> {
    const final = this.path(configDigest);
    const release = await acquireLock(`${final}.lock`, () => existsSync(final));
    if (!release) return final;
    try {
      if (existsSync(final)) return final;
      await this.build(configDigest, layers, final, progress);
      return final;
    } finally {
      release();
    }
  }

  private async build(configDigest: string, layers: LayerInput[], final: string, progress?: (e: RootfsProgress) => void): Promise<void> {
    this.builds++;
    const work = join(this.tmpDir, `rootfs-${digestHex(configDigest).slice(0, 16)}-${process.pid}-${Date.now().toString(36)}`);
    const tree = join(work, "tree");
    const out = join(work, "rootfs.ext4");
    try {
      const unpacked = await unpackLayers(tree, layers, { limits: this.opts.limits, onLayer: (layer, index) => progress?.({ phase: "unpack", layer, index }) });
      addMountPoints(unpacked);
      progress?.({ phase: "rootfs" });
      const { bytes, inodes } = measure(unpacked);
      const headroom = this.opts.headroomBytes ?? 32 * 1024 * 1024;
      let size = Math.ceil((bytes * 1.1 + inodes * 256 + headroom) / (1024 * 1024)) * 1024 * 1024;
      const nInodes = inodes + 1024;
      let err = await mkfs(tree, out, size, nInodes);
      if (err && /space|allocate/i.test(err)) {
        size *= 2;
        err = await mkfs(tree, out, size, nInodes);
      }
      if (err) throw new BackendError(`mkfs.ext4 -d failed building the rootfs of image ${configDigest}: ${err.slice(0, 500)}`, "is e2fsprogs >= 1.43 installed (mkfs.ext4 -d)? is there free disk space under the images directory?");
      await runDebugfs(out, fixupScript(tree, unpacked.meta));
      renameSync(out, final);
      progress?.({ phase: "rootfs", bytes: statSync(final).size });
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }

  /** Cached ext4 files by config digest. */
  list(): { configDigest: string; path: string; size: number }[] {
    return readdirSync(this.dir)
      .filter((n) => /^[a-f0-9]{64}\.ext4$/.test(n))
      .map((n) => ({ configDigest: `sha256:${n.slice(0, 64)}`, path: join(this.dir, n), size: statSync(join(this.dir, n)).size }));
  }
}

function addMountPoints(tree: UnpackedTree): void {
  for (const [name, mode] of Object.entries(MOUNT_POINTS)) {
    if (tree.meta.has(name)) continue;
    const p = join(tree.root, name);
    if (existsSync(p)) continue;
    mkdirSync(p, { mode: 0o755 });
    tree.meta.set(name, { kind: "dir", mode, uid: 0, gid: 0 });
  }
}

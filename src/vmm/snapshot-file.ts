/**
 * @module vmm/snapshot-file
 * Memory snapshot files and their validity.
 *
 * Writing. QEMU streams the migration to a unix socket that WE listen on
 * (`migrate unix:<runDir>/mig.sock`), and we write the file ourselves
 * (through `zstd -1` when the name ends in `.zst`). We do not use
 * `migrate exec:cmd > file`: QEMU reports `completed` before the exec'd
 * command has flushed, and QEMU 7.2 SIGTERMs/SIGKILLs that command 10 ms
 * after closing its pipe, so under load the tail of the file could be lost.
 * Here a snapshot is complete only when QMP says `completed` AND our writer
 * has finished; the data goes to `<file>.partial` and is renamed into place.
 *
 * Validity. Next to every snapshot `<file>` sits `<file>.json` (written
 * last, so its presence means the snapshot is complete) recording what a
 * restore must reproduce exactly: the machine (QEMU binary, accelerator,
 * guest assets hash, memory, vCPUs, hostname) and a stamp (path, size,
 * mtime in ns, inode) of every disk. QEMU requires the disks to be
 * byte-identical at restore; the overlay disk's stamp is taken after QEMU
 * flushed it at the end of the migration, so any later write (a cold boot,
 * or the restored VM itself writing) makes the snapshot stale, which is the
 * correct answer: restoring old RAM over a newer disk corrupts the
 * filesystem. A template's RAM is not in the stream but in its memory file
 * (`memory`, templates.ts), stamped the same way once the VM is paused.
 * `snapshotMismatch` compares; it is a pure function.
 */
import { chmodSync, closeSync, existsSync, fsyncSync, ftruncateSync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import { MigrationSplitter, PAGE } from "./snapshot-split.ts";
import type { Socket, UnixSocketListener } from "bun";

/** Identity of one file at one moment. */
export interface FileStamp {
  path: string;
  size: number;
  /** Modification time in ns, as a decimal string (exact; JS numbers lose ns). */
  mtimeNs: string;
  ino: string;
}

/** What a restore must match, recorded next to the snapshot. */
export interface SnapshotMeta {
  format: 1;
  vmId: string;
  createdAt: string;
  /** Size of the snapshot file in bytes. */
  bytes: number;
  machine: {
    qemuBinary: string;
    accel: string;
    arch: string;
    assetsHash: string;
    memoryMb: number;
    vcpus: number;
    hostname: string;
  };
  disks: { tools: FileStamp; rootfs: FileStamp; overlay?: FileStamp };
  /**
   * The shared memory file holding the guest RAM when the VM ran file-backed
   * (template builds, qemu-args.ts `memoryFile`): the stream then has no RAM,
   * so the file must be exactly the one QEMU wrote.
   */
  memory?: FileStamp;
}

/** What snapshot metadata records about a VM, computed from its spec and the files as they are now. */
export type SnapshotIdentity = Omit<SnapshotMeta, "vmId" | "createdAt" | "bytes" | "format">;

/** Stamp a file as it is now. */
export function stampFile(path: string): FileStamp {
  const st = statSync(path, { bigint: true });
  return { path, size: Number(st.size), mtimeNs: st.mtimeNs.toString(), ino: st.ino.toString() };
}

/** Path of the metadata file of snapshot `path`. */
export function snapshotMetaPath(path: string): string {
  return `${path}.json`;
}

/** Read a snapshot's metadata, or undefined when it has none (incomplete or foreign). */
export function readSnapshotMeta(path: string): SnapshotMeta | undefined {
  const metaPath = snapshotMetaPath(path);
  if (!existsSync(metaPath)) return undefined;
  return JSON.parse(readFileSync(metaPath, "utf8")) as SnapshotMeta;
}

/** Write the metadata atomically (temp file + rename). */
export function writeSnapshotMeta(path: string, meta: SnapshotMeta): void {
  const metaPath = snapshotMetaPath(path);
  const tmp = `${metaPath}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(meta, null, 2)}\n`);
  renameSync(tmp, metaPath);
}

/** Delete a snapshot and its metadata (missing files are fine); a split one's RAM file too. */
export function removeSnapshot(path: string): void {
  rmSync(snapshotMetaPath(path), { force: true });
  rmSync(path, { force: true });
  rmSync(`${path}.partial`, { force: true });
  const ram = splitMemoryFile(path);
  if (ram) {
    rmSync(ram, { force: true });
    rmSync(`${ram}.partial`, { force: true });
  }
}

/**
 * The RAM file of a split snapshot (`<name>.dev` holds the device stream,
 * `<name>.ram` the guest RAM: snapshot-split.ts), or undefined for a
 * snapshot of any other name, which holds its RAM in the stream.
 */
export function splitMemoryFile(path: string): string | undefined {
  return path.endsWith(".dev") ? `${path.slice(0, -".dev".length)}.ram` : undefined;
}

function sameStamp(a: FileStamp | undefined, b: FileStamp | undefined): boolean {
  if (!a || !b) return a === b;
  return a.path === b.path && a.size === b.size && a.mtimeNs === b.mtimeNs && a.ino === b.ino;
}

/**
 * Why `meta` cannot be restored as `expected` (the same shape, computed from
 * the spec and the files as they are now), or undefined when it can.
 * `actualBytes` is the current size of the snapshot file (undefined: missing).
 */
export function snapshotMismatch(meta: SnapshotMeta, expected: SnapshotIdentity, actualBytes: number | undefined): string | undefined {
  if (meta.format !== 1) return `unknown snapshot format ${String(meta.format)}`;
  if (actualBytes === undefined) return "the snapshot file is missing";
  if (actualBytes !== meta.bytes) return `the snapshot file is ${actualBytes} bytes, ${meta.bytes} were written (truncated or replaced)`;
  for (const key of Object.keys(meta.machine) as Array<keyof SnapshotMeta["machine"]>) {
    if (meta.machine[key] !== expected.machine[key]) {
      return `${key} differs: snapshot ${JSON.stringify(meta.machine[key])}, now ${JSON.stringify(expected.machine[key])}`;
    }
  }
  for (const disk of ["tools", "rootfs", "overlay"] as const) {
    const a = meta.disks[disk];
    const b = expected.disks[disk];
    if (sameStamp(a, b)) continue;
    if (!a) return `the snapshot has no ${disk} disk but the VM now has ${b!.path}`;
    if (!b) return `the snapshot needs the ${disk} disk ${a.path}, which the VM no longer attaches`;
    if (a.path !== b.path) return `${disk} disk moved: snapshot ${a.path}, now ${b.path}`;
    return `${disk} disk ${a.path} changed since the snapshot (size ${a.size} -> ${b.size}, mtime ${a.mtimeNs} -> ${b.mtimeNs})`;
  }
  if (!sameStamp(meta.memory, expected.memory)) {
    if (!meta.memory) return `the snapshot holds its RAM but the VM now maps the memory file ${expected.memory!.path}`;
    if (!expected.memory) return `the snapshot's RAM is in the memory file ${meta.memory.path}, which is missing`;
    return `memory file ${meta.memory.path} changed since the snapshot (size ${meta.memory.size} -> ${expected.memory.size}, mtime ${meta.memory.mtimeNs} -> ${expected.memory.mtimeNs})`;
  }
  return undefined;
}

/**
 * Copy a template's RAM file `from` (tmpfs while it booted) to `to`: sparse
 * (`cp --sparse=always` leaves the guest's never-touched, zero pages as
 * holes), 0600, fsynced, then renamed into place so `to` is complete or absent.
 */
export async function publishMemoryFile(from: string, to: string): Promise<void> {
  const partial = `${to}.partial`;
  rmSync(partial, { force: true });
  const cp = Bun.spawn(["cp", "--sparse=always", from, partial], { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  const [err, code] = await Promise.all([new Response(cp.stderr).text(), cp.exited]);
  if (code !== 0) {
    rmSync(partial, { force: true });
    throw new Error(`copying the template memory ${from} to ${partial} failed (cp exited ${code}): ${err.trim()}`);
  }
  chmodSync(partial, 0o600);
  const fd = openSync(partial, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(partial, to);
}

/** Receives one migration stream on a unix socket and writes it to a file. */
export interface SnapshotReceiver {
  /** Resolves with the bytes received once the stream ended and the file is flushed (`<path>.partial`). */
  readonly done: Promise<number>;
  /** Stop listening (idempotent). */
  close(): void;
}

interface Sink {
  write(chunk: Uint8Array): void;
  end(): Promise<void>;
}

function rawSink(path: string): Sink {
  const fd = openSync(path, "w", 0o600);
  return {
    write(chunk) {
      for (let off = 0; off < chunk.length; ) off += writeSync(fd, chunk, off, chunk.length - off);
    },
    async end() {
      fsyncSync(fd);
      closeSync(fd);
    },
  };
}

function zstdSink(path: string): Sink {
  const proc = Bun.spawn(["zstd", "-1", "-q", "-T2", "-f", "-o", path], { stdin: "pipe", stdout: "ignore", stderr: "pipe" });
  const stderr = new Response(proc.stderr).text();
  return {
    write(chunk) {
      proc.stdin.write(chunk);
    },
    async end() {
      await proc.stdin.end();
      const [err, code] = await Promise.all([stderr, proc.exited]);
      if (code !== 0) throw new Error(`zstd writing snapshot ${path} exited with code ${code}: ${err.trim()}\nhint: apt-get install zstd, or use a snapshot name without .zst`);
      chmodSync(path, 0o600); // guest RAM: readable by its owner only
    },
  };
}

/**
 * A split snapshot (snapshot-split.ts): the device stream to `devPath`, the
 * RAM to `ramPath` (sized by the stream, sparse: zero pages are never
 * written), contiguous pages gathered into writes of up to 1 MiB.
 */
function splitSink(devPath: string, ramPath: string): Sink {
  const dev = openSync(devPath, "w", 0o600);
  const ram = openSync(ramPath, "w", 0o600);
  const RUN = 1024 * 1024;
  const run = new Uint8Array(RUN);
  let runStart = 0;
  let runLen = 0;
  let written: Uint8Array | undefined; // one bit per page already holding data
  let devBuf: Uint8Array[] = [];
  let devLen = 0;
  const all = (fd: number, b: Uint8Array, pos?: number) => {
    for (let off = 0; off < b.length; ) off += writeSync(fd, b, off, b.length - off, pos === undefined ? null : pos + off);
  };
  const flushDev = () => {
    for (const b of devBuf) all(dev, b);
    devBuf = [];
    devLen = 0;
  };
  const flushRun = () => {
    if (runLen > 0) all(ram, run.subarray(0, runLen), runStart);
    runLen = 0;
  };
  const mark = (offset: number) => {
    const n = offset / PAGE;
    if (written) written[n >> 3]! |= 1 << (n & 7);
  };
  const splitter = new MigrationSplitter({
    device(bytes) {
      devBuf.push(bytes);
      devLen += bytes.length;
      if (devLen >= RUN) flushDev();
    },
    ramSize(bytes) {
      ftruncateSync(ram, bytes);
      written = new Uint8Array(Math.ceil(bytes / PAGE / 8));
    },
    page(offset, data) {
      if (runLen === 0 || offset !== runStart + runLen || runLen + PAGE > RUN) {
        flushRun();
        runStart = offset;
      }
      run.set(data, runLen);
      runLen += PAGE;
      mark(offset);
    },
    fill(offset, fill) {
      const n = offset / PAGE;
      // A hole reads as zeros: only a page that already holds data (sent twice) or a non-zero fill is written.
      if (fill === 0 && !(written && written[n >> 3]! & (1 << (n & 7)))) return;
      flushRun();
      all(ram, new Uint8Array(PAGE).fill(fill), offset);
      mark(offset);
    },
  });
  return {
    write(chunk) {
      splitter.feed(chunk);
    },
    async end() {
      try {
        splitter.end();
        flushRun();
        flushDev();
        fsyncSync(ram);
        fsyncSync(dev);
      } finally {
        closeSync(ram);
        closeSync(dev);
      }
    },
  };
}

/**
 * Listen on `socketPath` for QEMU's migration stream and write it to
 * `<path>.partial`: through zstd for `.zst`, split for `.dev` (its RAM to
 * `splitMemoryFile(path)` + `.partial`), as it comes otherwise.
 */
export function receiveSnapshot(socketPath: string, path: string): SnapshotReceiver {
  rmSync(socketPath, { force: true });
  const partial = `${path}.partial`;
  rmSync(partial, { force: true });
  let resolveDone!: (n: number) => void;
  let rejectDone!: (e: Error) => void;
  const done = new Promise<number>((res, rej) => {
    resolveDone = res;
    rejectDone = rej;
  });
  let sink: Sink | undefined;
  let bytes = 0;
  let listener: UnixSocketListener<undefined> | undefined;
  let conn: Socket<undefined> | undefined;
  let failed: Error | undefined;
  const finish = (err?: Error): void => {
    listener?.stop(true);
    listener = undefined;
    if (!sink) {
      rejectDone(err ?? new Error(`QEMU closed the migration socket ${socketPath} without sending a snapshot`));
      return;
    }
    const s = sink;
    sink = undefined;
    s.end().then(
      () => (err ? rejectDone(err) : resolveDone(bytes)),
      // The first error is the cause (closing a split file after a format error fails too).
      (e: unknown) => rejectDone(err ?? (e instanceof Error ? e : new Error(String(e)))),
    );
  };
  listener = Bun.listen<undefined>({
    unix: socketPath,
    socket: {
      open: (s) => {
        if (conn) {
          s.end(); // one stream per snapshot
          return;
        }
        conn = s;
        const ram = splitMemoryFile(path);
        if (ram) rmSync(`${ram}.partial`, { force: true });
        sink = path.endsWith(".zst") ? zstdSink(partial) : ram ? splitSink(partial, `${ram}.partial`) : rawSink(partial);
      },
      data: (s, data) => {
        if (s !== conn || failed) return;
        bytes += data.length;
        try {
          sink!.write(new Uint8Array(data));
        } catch (err) {
          // A stream the splitter does not know (SnapshotFormatError), or a write error: QEMU's migration fails with it.
          failed = err instanceof Error ? err : new Error(String(err));
          s.end();
          finish(failed);
        }
      },
      close: (s) => {
        if (s === conn && !failed) finish();
      },
      error: (s, e) => {
        if (s === conn && !failed) finish(new Error(`migration socket ${socketPath}: ${e.message}`));
      },
    },
  });
  return {
    done,
    close: () => {
      listener?.stop(true);
      listener = undefined;
      rmSync(socketPath, { force: true });
    },
  };
}

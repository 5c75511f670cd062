/**
 * @module cli/host-tar
 * Host side of `aegis cp`: pack a host path into a tar stream whose top
 * entry has the name the copy should have in the guest, and unpack a tar
 * from a guest safely. A guest is hostile, so unpacking keeps only regular
 * files, directories and symlinks, never preserves owners (files belong to
 * the user running aegis), drops setuid/setgid bits, and relies on the
 * `tar` package's refusal of absolute and `..` names and of writes through
 * symlinks.
 */
import { lstatSync, readdirSync, readlinkSync, createReadStream } from "node:fs";
import { join } from "node:path";
import { Header, Pax, extract } from "tar";
import type { ReadEntry } from "tar";

const BLOCK = 512;

function header(data: ConstructorParameters<typeof Header>[0] & object): Buffer {
  const h = new Header(data);
  const block = Buffer.alloc(BLOCK);
  return h.encode(block, 0) ? Buffer.concat([new Pax(data as object).encode(), block]) : block;
}

/** A tar stream of host path `src`, its top entry named `name` (files, directories, symlinks; modes and mtimes kept). */
export function packHostPath(src: string, name: string): ReadableStream<Uint8Array> {
  async function* entries(host: string, rel: string): AsyncGenerator<Uint8Array> {
    const st = lstatSync(host);
    const common = { mode: st.mode & 0o7777, mtime: st.mtime, uid: 0, gid: 0 };
    if (st.isDirectory()) {
      yield header({ ...common, path: `${rel}/`, type: "Directory", size: 0 });
      for (const child of readdirSync(host).sort()) yield* entries(join(host, child), `${rel}/${child}`);
    } else if (st.isSymbolicLink()) {
      yield header({ ...common, path: rel, type: "SymbolicLink", size: 0, linkpath: readlinkSync(host) });
    } else if (st.isFile()) {
      yield header({ ...common, path: rel, type: "File", size: st.size });
      let sent = 0;
      for await (const chunk of createReadStream(host)) {
        const bytes = chunk as Buffer;
        const room = st.size - sent;
        if (room <= 0) break;
        const part = bytes.length > room ? bytes.subarray(0, room) : bytes;
        sent += part.length;
        yield part;
      }
      if (sent < st.size) yield Buffer.alloc(st.size - sent);
      const rest = st.size % BLOCK;
      if (rest !== 0) yield Buffer.alloc(BLOCK - rest);
    } else {
      process.stderr.write(`aegis: skipping ${host}: only files, directories and symlinks are copied\n`);
    }
  }
  const it = (async function* () {
    yield* entries(src, name);
    yield Buffer.alloc(BLOCK * 2);
  })();
  return new ReadableStream<Uint8Array>({
    pull: async (controller) => {
      const { value, done } = await it.next();
      if (done) controller.close();
      else controller.enqueue(value);
    },
  });
}

/** Unpack a tar from a guest into host directory `dir` (see the module notes). */
export async function unpackFromGuest(tar: ReadableStream<Uint8Array>, dir: string): Promise<void> {
  const sink = extract({
    cwd: dir,
    preserveOwner: false,
    filter: (_path: string, entry: unknown) => {
      const e = entry as ReadEntry;
      if (e.type !== "File" && e.type !== "Directory" && e.type !== "SymbolicLink") {
        process.stderr.write(`aegis: skipping ${e.path}: a ${e.type} is not copied\n`);
        return false;
      }
      if (e.mode !== undefined) e.mode &= 0o1777;
      return true;
    },
  });
  const done = new Promise<void>((resolve, reject) => {
    sink.on("finish", () => resolve());
    sink.on("close", () => resolve());
    sink.on("error", reject);
  });
  for await (const chunk of tar) {
    if (!sink.write(Buffer.from(chunk))) await new Promise((r) => sink.once("drain", r));
  }
  sink.end();
  await done;
}

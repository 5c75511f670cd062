/**
 * A local Debian mirror for `aegis setup` tests, made of real archive files:
 * the InRelease files apt fetched (so the signatures gpgv checks are
 * Debian's own), their Packages indexes (apt keeps them lz4-compressed;
 * `apt-helper cat-file` unpacks them, and we recompress as a real mirror
 * would), and the real .debs of the cloud kernel and busybox-static (reused
 * from apt's or aegis's caches when their sha256 matches, else fetched once
 * with `apt-get download` into ~/.cache/aegis/test-debs). Served by
 * Bun.serve on 127.0.0.1 under /debian and /debian-security.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { compareDebVersions, findPackageStanzas } from "../../src/vmm/assets/debian-control.ts";

const LISTS = "/var/lib/apt/lists";

/** The suites the mirror carries, with the compression its Packages is served in. */
export const MIRROR_SUITES = [
  { suite: "bookworm", root: "debian", ext: ".gz" },
  { suite: "bookworm-updates", root: "debian", ext: ".xz" },
  { suite: "bookworm-security", root: "debian-security", ext: "" },
] as const;

async function sh(argv: string[], cwd?: string): Promise<Uint8Array<ArrayBuffer>> {
  const p = Bun.spawn(argv, { cwd, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).bytes(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`${argv.join(" ")}: exit ${code}: ${err}`);
  return new Uint8Array(out);
}

function listFile(suite: string, tail: string): string {
  const f = readdirSync(LISTS).find((n) => n.includes(`_dists_${suite}_${tail}`) && !n.endsWith(".diff_Index"));
  if (!f) throw new Error(`no ${suite} ${tail} in ${LISTS}: run apt-get update (the test mirrors apt's real lists)`);
  return join(LISTS, f);
}

function sha256(bytes: Uint8Array): string {
  return new Bun.CryptoHasher("sha256").update(bytes).digest("hex");
}

/** Find a real .deb with this sha256 in the local caches, or download it with apt-get. */
async function realDeb(name: string, version: string, filename: string, want: string): Promise<Uint8Array> {
  const store = join(homedir(), ".cache", "aegis", "test-debs");
  const candidates = [
    join(store, filename),
    join("/var/cache/apt/archives", filename.replace(/_(\d+):/, "_$1%3a")),
    join("/var/cache/apt/archives", filename),
    ...(existsSync(join(homedir(), ".cache/aegis/kernels")) ? readdirSync(join(homedir(), ".cache/aegis/kernels")).map((d) => join(homedir(), ".cache/aegis/kernels", d, "deb", filename)) : []),
  ];
  for (const c of candidates) {
    if (existsSync(c)) {
      const bytes = readFileSync(c);
      if (sha256(bytes) === want) return bytes;
    }
  }
  mkdirSync(store, { recursive: true });
  await sh(["apt-get", "download", `${name}=${version}`], store);
  const got = readdirSync(store).find((f) => f.startsWith(`${name}_`) && f.endsWith(".deb") && sha256(readFileSync(join(store, f))) === want);
  if (!got) throw new Error(`apt-get download ${name}=${version} gave no .deb with sha256 ${want}`);
  const bytes = readFileSync(join(store, got));
  if (got !== filename) writeFileSync(join(store, filename), bytes);
  return bytes;
}

/** What the mirror holds. */
export interface Mirror {
  dir: string;
  kernelPackage: string;
  kernelVersion: string;
  /** Paths of the .debs inside `dir`. */
  kernelDeb: string;
  busyboxDeb: string;
}

async function xz(bytes: Uint8Array): Promise<Uint8Array> {
  const p = Bun.spawn(["xz", "-1", "-c"], { stdin: bytes, stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).bytes(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`xz: ${err}`);
  return out;
}

/** Build the mirror tree under `dir` (see the module docs). */
export async function buildMirror(dir: string): Promise<Mirror> {
  const packages = new Map<string, string>();
  for (const s of MIRROR_SUITES) {
    const base = join(dir, s.root, "dists", s.suite);
    mkdirSync(join(base, "main", "binary-amd64"), { recursive: true });
    copyFileSync(listFile(s.suite, "InRelease"), join(base, "InRelease"));
    const bytes = await sh(["/usr/lib/apt/apt-helper", "cat-file", listFile(s.suite, "main_binary-amd64_Packages")]);
    packages.set(s.suite, new TextDecoder().decode(bytes));
    const out = join(base, "main", "binary-amd64", `Packages${s.ext}`);
    writeFileSync(out, s.ext === ".gz" ? Bun.gzipSync(bytes, { level: 1 }) : s.ext === ".xz" ? await xz(bytes) : bytes);
  }
  // The newest stanza across the suites: the one setup must pick.
  const newest = (name: string) => {
    const all = MIRROR_SUITES.flatMap((s) => findPackageStanzas(packages.get(s.suite)!, name).map((st) => ({ st, root: s.root })));
    const best = all.sort((a, b) => compareDebVersions(a.st.Version!, b.st.Version!)).at(-1);
    if (!best) throw new Error(`${name} is in none of the apt lists`);
    return best;
  };
  const place = async (name: string) => {
    const { st, root } = newest(name);
    const bytes = await realDeb(name, st.Version!, st.Filename!.split("/").at(-1)!, st.SHA256!);
    const path = join(dir, root, st.Filename!);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, bytes);
    return { st, path };
  };
  const meta = newest("linux-image-cloud-amd64").st;
  const kernelPackage = meta.Depends!.split(/[\s,(]/)[0]!;
  const kernel = await place(kernelPackage);
  const busybox = await place("busybox-static");
  return { dir, kernelPackage, kernelVersion: kernel.st.Version!, kernelDeb: kernel.path, busyboxDeb: busybox.path };
}

/** A static file server for `dir` on 127.0.0.1 that records every path asked for. */
export function serveMirror(dir: string): { url: string; requests: string[]; stop: () => void } {
  const requests: string[] = [];
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      const path = decodeURIComponent(new URL(req.url).pathname);
      requests.push(path);
      if (path.split("/").includes("..")) return new Response("bad path", { status: 400 });
      const full = join(dir, path);
      return existsSync(full) && statSync(full).isFile() ? new Response(Bun.file(full)) : new Response("not found", { status: 404 });
    },
  });
  return { url: `http://127.0.0.1:${server.port}`, requests, stop: () => server.stop(true) };
}

/**
 * The Debian bookworm test image (test/helpers/debian-image.ts) is what it
 * claims: built from Debian's archive, pushed with skopeo to a real local
 * registry, each tag's manifest, config and layers as the fixture documents;
 * its rootfs runs GNU coreutils, dash, `id` and busybox httpd (checked with
 * chroot on the host, no VM); and `aegis image pull` / `image list` take it.
 * The first run on a machine builds the image (2-3 minutes, as root).
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Parser, type ReadEntry } from "tar";
import { TestHome } from "../helpers/aegis.ts";
import { DEBIAN_PATH, DEBIAN_TAGS, debianImage, pushDebianImage, type DebianImage, type DebianTag } from "../helpers/debian-image.ts";
import { hostArch } from "../helpers/oci-build.ts";
import { startRegistry, type TestRegistry } from "../helpers/registry.ts";

const BUILD_TIMEOUT = 15 * 60_000;
const TIMEOUT = 300_000;
const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}
interface Manifest {
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
}
interface ImageConfig {
  architecture: string;
  os: string;
  config: { User?: string; WorkingDir?: string; Env?: string[]; Entrypoint?: string[]; Cmd?: string[]; ExposedPorts?: Record<string, object> };
  rootfs: { type: string; diff_ids: string[] };
}
interface Entry {
  type: string;
  uid: number;
  gid: number;
  mode: number;
  linkpath?: string;
  text?: string;
}

let img: DebianImage;
let reg: TestRegistry;
let refs: Record<DebianTag, string>;
let work: string;
const manifests = {} as Record<DebianTag, Manifest>;
const configs = {} as Record<DebianTag, ImageConfig>;

const sha = (b: Uint8Array) => `sha256:${new Bun.CryptoHasher("sha256").update(b).digest("hex")}`;

async function blob(digest: string): Promise<Uint8Array<ArrayBuffer>> {
  const res = await fetch(`${reg.base}/v2/debian/blobs/${digest}`);
  expect(res.status).toBe(200);
  const bytes = new Uint8Array(await res.arrayBuffer());
  expect(sha(bytes)).toBe(digest);
  return bytes;
}

/** Entries of an uncompressed layer tar; the text of files under etc/ and srv/ (small) is kept. */
async function entries(tar: Uint8Array): Promise<Map<string, Entry>> {
  const out = new Map<string, Entry>();
  const parser = new Parser({ strict: true });
  parser.on("entry", (e: ReadEntry) => {
    const path = e.path.replace(/^\.\//, "").replace(/\/$/, "");
    const entry: Entry = { type: e.type, uid: e.uid ?? -1, gid: e.gid ?? -1, mode: e.mode ?? 0, linkpath: e.linkpath };
    out.set(path, entry);
    if (e.type !== "File" || !/^(etc|srv)\//.test(path)) return e.resume();
    const chunks: Buffer[] = [];
    e.on("data", (c: Buffer) => chunks.push(c));
    e.on("end", () => (entry.text = Buffer.concat(chunks).toString("utf8")));
  });
  await new Promise<void>((resolve, reject) => {
    parser.on("error", reject);
    parser.on("end", () => resolve());
    parser.end(Buffer.from(tar));
  });
  return out;
}

/** The uncompressed top layer of `tag`, checked against the config's diff_id. */
async function layerEntries(tag: DebianTag, index: number): Promise<Map<string, Entry>> {
  const d = manifests[tag].layers[index]!;
  const tar = Bun.gunzipSync(await blob(d.digest));
  expect(sha(tar)).toBe(configs[tag].rootfs.diff_ids[index]!);
  return entries(tar);
}

async function sh(argv: string[]): Promise<string> {
  const p = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe", stdin: "ignore", env: { PATH: DEBIAN_PATH, LANG: "C" } });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`${argv.join(" ")} exited ${code}: ${err}`);
  return out;
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "aegis-debian-it-"));
  img = await debianImage();
  reg = await startRegistry();
  refs = await pushDebianImage(img, reg.host);
  for (const tag of DEBIAN_TAGS) {
    const res = await fetch(`${reg.base}/v2/debian/manifests/${tag}`, { headers: { accept: `${OCI_MANIFEST}, application/vnd.docker.distribution.manifest.v2+json` } });
    expect(res.status).toBe(200);
    const bytes = new Uint8Array(await res.arrayBuffer());
    // skopeo pushed the layout's manifest as is: same bytes, so same digest.
    expect(res.headers.get("docker-content-digest")).toBe(img.manifests[tag]);
    expect(sha(bytes)).toBe(img.manifests[tag]);
    expect(res.headers.get("content-type")).toBe(OCI_MANIFEST);
    manifests[tag] = JSON.parse(new TextDecoder().decode(bytes));
    configs[tag] = JSON.parse(new TextDecoder().decode(await blob(manifests[tag].config.digest)));
  }
}, BUILD_TIMEOUT);

afterAll(async () => {
  await reg?.[Symbol.asyncDispose]();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("the Debian test image in a registry", () => {
  it("names the built cache and records its cost", () => {
    expect(img.layout).toEndWith(`/test-images/debian-${img.key}/oci`);
    expect(img.built.bytes).toBeGreaterThan(10e6);
    expect(img.built.bytes).toBeLessThan(60e6);
  });

  it("has every layer blob of every tag, sized as the manifest says; app and server are one layer on bookworm", async () => {
    for (const tag of DEBIAN_TAGS) {
      const m = manifests[tag];
      expect(configs[tag].rootfs.diff_ids.length).toBe(m.layers.length);
      for (const l of m.layers) {
        expect(l.mediaType).toBe("application/vnd.oci.image.layer.v1.tar+gzip");
        const head = await fetch(`${reg.base}/v2/debian/blobs/${l.digest}`, { method: "HEAD" });
        expect(head.status).toBe(200);
        expect(Number(head.headers.get("content-length"))).toBe(l.size);
      }
      expect(configs[tag]).toMatchObject({ architecture: hostArch, os: "linux" });
    }
    expect(manifests.bookworm.layers.length).toBe(1);
    for (const tag of ["app", "server"] as const) expect(manifests[tag].layers.slice(0, -1)).toEqual(manifests.bookworm.layers);
    expect(manifests.app.layers.length).toBe(2);
    expect(manifests.server.layers.length).toBe(2);
  });

  it("bookworm: the official PATH and Cmd; a slim minbase rootfs with GNU coreutils, dash as sh and bash", async () => {
    expect(configs.bookworm.config).toEqual({ Env: [`PATH=${DEBIAN_PATH}`], Cmd: ["bash"] });
    const base = await layerEntries("bookworm", 0);
    expect(base.get("bin")).toMatchObject({ type: "SymbolicLink", linkpath: "usr/bin" });
    expect(base.get("usr/bin/sh")).toMatchObject({ type: "SymbolicLink", linkpath: "dash" });
    for (const f of ["usr/bin/ls", "usr/bin/id", "usr/bin/bash", "usr/bin/dash"]) expect(base.get(f)).toMatchObject({ type: "File", uid: 0, gid: 0, mode: 0o755 });
    expect(base.get("etc/os-release")?.type).toBe("SymbolicLink");
    expect(base.get("usr/lib/os-release")).toBeDefined();
    expect(base.get("etc/debian_version")?.text).toMatch(/^12\.\d+\n$/);
    const paths = [...base.keys()];
    expect(paths.filter((p) => /^(usr\/share\/(man|info|locale)|var\/lib\/apt\/lists|var\/cache\/apt|dev|tmp)\/./.test(p))).toEqual([]);
    expect(paths.filter((p) => p.startsWith("usr/share/doc/") && base.get(p)!.type === "File" && !p.endsWith("/copyright"))).toEqual([]);
    expect(paths.filter((p) => /^var\/log\/.*\.log$/.test(p) || p === "etc/resolv.conf" || p === "etc/hostname")).toEqual([]);
    expect([...base.values()].filter((e) => ["CharacterDevice", "BlockDevice", "FIFO"].includes(e.type))).toEqual([]);
  });

  it("app: user app (1000:1000, groups audio and extra), WorkingDir it owns, its Env, Entrypoint and Cmd", async () => {
    expect(configs.app.config).toEqual({
      User: "app",
      WorkingDir: "/srv/app",
      Env: [`PATH=${DEBIAN_PATH}`, "GREETING=hello from the image"],
      Entrypoint: ["/bin/echo", "entry"],
      Cmd: ["default", "cmd"],
    });
    const top = await layerEntries("app", 1);
    expect(top.get("etc/passwd")?.text).toContain("\napp:x:1000:1000::/home/app:/bin/bash\n");
    const group = top.get("etc/group")!.text!;
    expect(group).toMatch(/^audio:x:29:app$/m);
    expect(group).toMatch(/^extra:x:1500:app$/m);
    expect(group).toMatch(/^app:x:1000:$/m);
    expect(top.get("srv/app")).toMatchObject({ type: "Directory", uid: 1000, gid: 1000 });
    expect(top.get("srv/app/hello.txt")).toMatchObject({ type: "File", uid: 1000, gid: 1000, text: "hello from /srv/app\n" });
    expect(top.get("home/app")).toMatchObject({ type: "Directory", uid: 1000, gid: 1000 });
  });

  it("server: busybox and a page to serve, port 8080 exposed, Cmd busybox httpd", async () => {
    expect(configs.server.config).toEqual({
      Env: [`PATH=${DEBIAN_PATH}`],
      ExposedPorts: { "8080/tcp": {} },
      Cmd: ["busybox", "httpd", "-f", "-p", "8080", "-h", "/srv/www"],
    });
    const top = await layerEntries("server", 1);
    expect(top.get("usr/bin/busybox")).toMatchObject({ type: "File", mode: 0o755 });
    expect(top.get("srv/www/index.html")?.text).toBe("hello from the debian server image\n");
  });
});

describe("the Debian test image's rootfs (chroot on the host, no VM)", () => {
  it("runs GNU ls, dash as /bin/sh and id with the app user's groups", async () => {
    const index = statSync(join(img.layout, "index.json")).mtimeMs;
    const bundle = join(work, "app");
    await sh(["umoci", "unpack", "--image", `${img.layout}:app`, bundle]);
    expect(statSync(join(img.layout, "index.json")).mtimeMs).toBe(index);
    const root = join(bundle, "rootfs");
    expect((await sh(["chroot", root, "ls", "--version"])).split("\n")[0]).toMatch(/^ls \(GNU coreutils\) 9\.\d+$/);
    expect(await sh(["chroot", root, "readlink", "-f", "/bin/sh"])).toBe("/usr/bin/dash\n");
    expect(await sh(["chroot", root, "/bin/sh", "-c", 'echo "${BASH_VERSION:-no bash}"'])).toBe("no bash\n");
    expect(await sh(["chroot", root, "bash", "-c", 'echo "${BASH_VERSION%%.*}"'])).toBe("5\n");
    expect(await sh(["chroot", root, "id", "app"])).toBe("uid=1000(app) gid=1000(app) groups=1000(app),29(audio),1500(extra)\n");
    expect(await sh(["chroot", "--userspec=app:app", root, "cat", "/srv/app/hello.txt"])).toBe("hello from /srv/app\n");
  }, TIMEOUT);

  it("serves /srv/www with the server tag's busybox httpd (bound to loopback here)", async () => {
    const bundle = join(work, "server");
    await sh(["umoci", "unpack", "--image", `${img.layout}:server`, bundle]);
    const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = s.port;
    s.stop(true);
    const httpd = Bun.spawn(["chroot", join(bundle, "rootfs"), "busybox", "httpd", "-f", "-p", `127.0.0.1:${port}`, "-h", "/srv/www"], { stdout: "ignore", stderr: "pipe", stdin: "ignore" });
    try {
      let body = "";
      for (let i = 0; i < 100 && !body; i++) {
        body = await fetch(`http://127.0.0.1:${port}/`).then(
          (r) => r.text(),
          () => Bun.sleep(50).then(() => ""),
        );
      }
      expect(body).toBe("hello from the debian server image\n");
    } finally {
      httpd.kill();
      await httpd.exited;
    }
  }, TIMEOUT);
});

describe("aegis image pull of the Debian test image", () => {
  it("pulls debian:app from the registry and lists it with its layers, PATH and WorkingDir", async () => {
    await using home = new TestHome();
    await home.ok(["up"]);
    const pulled = await home.ok(["image", "pull", refs.app]);
    expect(pulled.stdout).toBe(`${img.manifests.app}\n`);
    const table = (await home.ok(["image", "list"])).stdout.split("\n");
    expect(table[0]).toMatch(/^REF\s+DIGEST\s+SIZE\s+CREATED$/);
    expect(table[1]).toStartWith(`${refs.app} `);
    expect(table[1]).toContain(img.manifests.app.slice(0, 19));
    const list = JSON.parse((await home.ok(["image", "list", "--json"])).stdout) as { ref: string; digest: string; config_digest: string; layers: { digest: string; size: number }[]; size: number; env_path: string; working_dir: string }[];
    expect(list.map((i) => i.ref)).toEqual([refs.app]);
    const rec = list[0]!;
    expect(rec).toMatchObject({ digest: img.manifests.app, config_digest: manifests.app.config.digest, env_path: DEBIAN_PATH, working_dir: "/srv/app" });
    expect(rec.layers.map((l) => [l.digest, l.size])).toEqual(manifests.app.layers.map((l) => [l.digest, l.size]));
    expect(rec.size).toBe(manifests.app.layers.reduce((n, l) => n + l.size, 0));
  }, TIMEOUT);
});

/**
 * The image pipeline against a real registry (Debian's docker-registry on
 * 127.0.0.1) with images the tests build and push themselves.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { PullProgress } from "../../src/api/schema/images.ts";
import { ImageRecord } from "../../src/api/schema/images.ts";
import { ImageStore } from "../../src/daemon/images/store.ts";
import { busyboxLayer, hostArch, makeImage, makeIndex, makeLayer, type TestImage } from "../helpers/oci-build.ts";
import { ext4Cat, ext4Ls, ext4Stat } from "../helpers/oci-ext4.ts";
import { writeDockerArchive, writeOciLayout } from "../helpers/oci-layout.ts";
import { pushImage, pushManifest } from "../helpers/oci-push.ts";
import { startHostileRegistry } from "../helpers/hostile-registry.ts";
import { startRegistry, type TestRegistry } from "../helpers/registry.ts";

let reg: TestRegistry;
let work: string;
let base: TestImage;
let layered: TestImage;

const newStore = () => new ImageStore(mkdtempSync(join(work, "images-")));

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "aegis-images-it-"));
  reg = await startRegistry();
  base = makeImage([await busyboxLayer()], { workingDir: "/work", env: ["PATH=/bin:/usr/bin", "HOME=/root"] });
  await pushImage({ base: reg.base, repo: "test/busybox" }, base, "v1");
  const l1 = makeLayer([
    { path: "data/", type: "Directory" },
    { path: "data/keep", content: "keep" },
    { path: "data/gone", content: "gone" },
    { path: "opq/old", content: "old" },
  ]);
  const l2 = makeLayer(
    [
      { path: "data/.wh.gone", content: "" },
      { path: "opq/.wh..wh..opq", content: "" },
      { path: "opq/new", content: "new", uid: 1000, gid: 100 },
    ],
    "zstd",
  );
  layered = makeImage([...base.layers, l1, l2]);
  await pushImage({ base: reg.base, repo: "test/layered" }, layered, "latest");
});

afterAll(async () => {
  await reg?.[Symbol.asyncDispose]();
  rmSync(work, { recursive: true, force: true });
});

describe("pull from a registry", () => {
  it("pulls by tag, reports progress and records PATH and WorkingDir", async () => {
    const store = newStore();
    const events: PullProgress[] = [];
    const rec = await store.pull(`${reg.host}/test/busybox:v1`, { progress: (e) => events.push(e) });
    expect(ImageRecord.parse(rec)).toEqual(rec);
    expect(rec).toMatchObject({ ref: `${reg.host}/test/busybox:v1`, digest: base.manifest.digest, config_digest: base.config.digest, env_path: "/bin:/usr/bin", working_dir: "/work", index_digest: null });
    expect(rec.platform.startsWith(`linux/${hostArch}`)).toBe(true);
    expect(events.map((e) => e.phase)).toEqual(expect.arrayContaining(["resolve", "layer", "unpack", "rootfs"]));
    const last = events.filter((e) => e.phase === "layer").at(-1)!;
    expect(last).toEqual({ phase: "layer", layer: base.layers[0]!.digest, bytes: base.layers[0]!.bytes.byteLength, total: base.layers[0]!.bytes.byteLength });
    expect(await ext4Stat(rec.rootfs, "/bin/busybox")).toMatchObject({ mode: 0o100755, uid: 0 });
    expect(store.list().map((r) => r.ref)).toEqual([rec.ref]);
    expect(store.get(`${reg.host}/test/busybox:v1`)?.digest).toBe(rec.digest);
    expect(store.get(rec.config_digest)?.ref).toBe(rec.ref);
  });

  it("pulls by digest and serves a second pull from the cache", async () => {
    const store = newStore();
    const ref = `${reg.host}/test/busybox@${base.manifest.digest}`;
    const a = await store.pull(ref);
    const events: PullProgress[] = [];
    const b = await store.pull(ref, { progress: (e) => events.push(e) });
    expect(b.rootfs).toBe(a.rootfs);
    expect(events.some((e) => e.phase === "unpack")).toBe(false);
    expect(store.rootfs.builds).toBe(1);
  });

  it("resolves a multi-platform index to the host platform", async () => {
    const other = hostArch === "amd64" ? "arm64" : "amd64";
    const native = makeImage([makeLayer([{ path: "arch", content: hostArch }])]);
    const foreign = makeImage([makeLayer([{ path: "arch", content: other }])], { architecture: other });
    const t = { base: reg.base, repo: "test/multi" };
    await pushImage(t, native);
    await pushImage(t, foreign);
    const index = makeIndex([foreign, native]);
    await pushManifest(t, "latest", index);
    const rec = await newStore().pull(`${reg.host}/test/multi`);
    expect(rec).toMatchObject({ digest: native.manifest.digest, index_digest: index.digest });
    expect(await ext4Cat(rec.rootfs, "/arch")).toBe(hostArch);
  });

  it("refuses a single-platform image built for another architecture", async () => {
    const other = hostArch === "amd64" ? "arm64" : "amd64";
    const img = makeImage([makeLayer([{ path: "x", content: "x" }])], { architecture: other });
    await pushImage({ base: reg.base, repo: "test/foreign" }, img, "v1");
    await expect(newStore().pull(`${reg.host}/test/foreign:v1`)).rejects.toThrow(`is built for linux/${other}`);
  });

  it("applies whiteouts and opaque directories across layers into the ext4", async () => {
    const rec = await newStore().pull(`${reg.host}/test/layered`);
    expect((await ext4Ls(rec.rootfs, "/data")).map((e) => e.name).sort()).toEqual([".", "..", "keep"]);
    expect((await ext4Ls(rec.rootfs, "/opq")).map((e) => e.name).sort()).toEqual([".", "..", "new"]);
    expect(await ext4Stat(rec.rootfs, "/opq/new")).toMatchObject({ uid: 1000, gid: 100 });
  });

  it("reports an unknown tag as not found", async () => {
    await expect(newStore().pull(`${reg.host}/test/busybox:nope`)).rejects.toMatchObject({ code: "not_found" });
  });

  it("rejects a tampered blob and does not poison the cache", async () => {
    const img = makeImage([makeLayer([{ path: "payload", content: "genuine content".repeat(100) }])]);
    await pushImage({ base: reg.base, repo: "test/tamper" }, img, "v1");
    const file = reg.blobFile(img.layers[0]!.digest);
    const genuine = readFileSync(file);
    const bad = Buffer.from(genuine);
    bad.writeUInt8(bad.readUInt8(bad.length - 5) ^ 0xff, bad.length - 5);
    writeFileSync(file, bad);
    const store = newStore();
    const err = await store.pull(`${reg.host}/test/tamper:v1`).catch((e: Error) => e);
    expect(String(err)).toContain(`digest mismatch for layer ${img.layers[0]!.digest}`);
    expect(store.blobs.has(img.layers[0]!.digest)).toBe(false);
    expect(readdirSync(store.blobs.tmpDir)).toEqual([]);
    expect(store.list()).toEqual([]);
    writeFileSync(file, genuine);
    const rec = await store.pull(`${reg.host}/test/tamper:v1`);
    expect(await ext4Cat(rec.rootfs, "/payload")).toBe("genuine content".repeat(100));
  });

  it("pulls the same image concurrently with one download per blob and one rootfs build", async () => {
    const store = newStore();
    const recs = await Promise.all([1, 2, 3].map(() => store.pull(`${reg.host}/test/layered`)));
    expect(new Set(recs.map((r) => r.rootfs)).size).toBe(1);
    expect(store.rootfs.builds).toBe(1);
    expect(store.list()).toHaveLength(1);
  });

  it("removes images and garbage-collects what nothing references", async () => {
    const store = newStore();
    const a = await store.pull(`${reg.host}/test/busybox:v1`);
    const b = await store.pull(`${reg.host}/test/layered`);
    store.remove(`${reg.host}/test/layered:latest`);
    expect(store.get(`${reg.host}/test/layered`)).toBeNull();
    expect(() => store.remove(`${reg.host}/test/layered`)).toThrow("is not in the local store");
    // b's rootfs is still referenced by a (hypothetical) instance through its manifest digest.
    const kept = store.gc(new Set([b.digest]));
    expect(kept).toEqual({ removedBlobs: 0, removedRootfs: 0, freedBytes: 0 });
    const dead = Bun.spawn(["true"]);
    await dead.exited;
    const stale = join(store.blobs.tmpDir, `blob-${dead.pid}-abcdef`);
    writeFileSync(stale, "partial");
    const res = store.gc(new Set());
    expect(existsSync(stale)).toBe(false);
    expect(res.removedRootfs).toBe(1);
    expect(res.removedBlobs).toBe(4); // manifest, config, two layers unique to b
    expect(res.freedBytes).toBeGreaterThan(0);
    expect(existsSync(b.rootfs)).toBe(false);
    expect(existsSync(a.rootfs)).toBe(true);
    expect(store.blobs.has(a.layers[0]!.digest)).toBe(true);
  });
});

describe("token auth", () => {
  it("gets an anonymous bearer token from the challenge, and uses credentials for private repositories", async () => {
    await using treg = await startRegistry({ tokenAuth: true, users: { alice: "s3cret" } });
    const img = makeImage([makeLayer([{ path: "hello", content: "token" }])]);
    await pushImage({ base: treg.base, repo: "open/img", auth: treg.pushAuth("open/img") }, img, "v1");
    await pushImage({ base: treg.base, repo: "private/img", auth: treg.pushAuth("private/img") }, img, "v1");
    const store = newStore();
    const rec = await store.pull(`${treg.host}/open/img:v1`);
    expect(await ext4Cat(rec.rootfs, "/hello")).toBe("token");
    expect(treg.tokenRequests).toContainEqual({ scope: "repository:open/img:pull", user: null });
    const denied = await store.pull(`${treg.host}/private/img:v1`).catch((e: Error) => e);
    expect(String(denied)).toContain("denied access");
    const wrong = await store.pull(`${treg.host}/private/img:v1`, { credentials: { username: "alice", password: "nope" } }).catch((e: Error) => e);
    expect(String(wrong)).toContain("refused a token");
    const ok = await store.pull(`${treg.host}/private/img:v1`, { credentials: { username: "alice", password: "s3cret" } });
    expect(ok.digest).toBe(img.manifest.digest);
    expect(treg.tokenRequests).toContainEqual({ scope: "repository:private/img:pull", user: "alice" });
  });
});

describe("hostile registries", () => {
  const MiB = 1024 * 1024;
  const ociManifest = "application/vnd.oci.image.manifest.v1+json";
  const json = (o: unknown) => new TextEncoder().encode(JSON.stringify(o));
  const fakeDigest = (c: string) => `sha256:${c.repeat(64)}`;
  const rssMiB = () => process.memoryUsage().rss / MiB;

  it("stops reading a 512 MiB chunked manifest at 4 MiB, with the daemon's memory bounded", async () => {
    await using evil = startHostileRegistry({ "/v2/evil/big/manifests/v1": { kind: "flood", total: 512 * MiB } });
    Bun.gc(true);
    const before = rssMiB();
    const err = await newStore()
      .pull(`${evil.host}/evil/big:v1`)
      .catch((e: Error) => e);
    const grew = rssMiB() - before;
    expect(String(err)).toContain(`manifest v1 from ${evil.host}/evil/big is larger than 4 MiB`);
    // Socket buffers let the server hand over a little more than the limit, never the whole body.
    expect(evil.sent.get("/v2/evil/big/manifests/v1")!).toBeLessThan(64 * MiB);
    expect(grew).toBeLessThan(128);
  });

  it("reads only the start of a huge error body", async () => {
    await using evil = startHostileRegistry({ "/v2/evil/err/manifests/v1": { kind: "flood", total: 512 * MiB, status: 500, contentType: "text/plain" } });
    const err = await newStore()
      .pull(`${evil.host}/evil/err:v1`)
      .catch((e: Error) => e);
    expect(String(err)).toContain(`registry ${evil.host} answered HTTP 500 for manifest v1`);
    expect(evil.sent.get("/v2/evil/err/manifests/v1")!).toBeLessThan(64 * MiB);
  });

  it("refuses a config declared larger than 8 MiB before fetching it", async () => {
    const manifest = json({ schemaVersion: 2, mediaType: ociManifest, config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: fakeDigest("c"), size: 4 * 1024 * MiB }, layers: [] });
    await using evil = startHostileRegistry({ "/v2/evil/cfg/manifests/v1": { kind: "doc", body: manifest, contentType: ociManifest } });
    const err = await newStore()
      .pull(`${evil.host}/evil/cfg:v1`)
      .catch((e: Error) => e);
    expect(String(err)).toContain(`config ${fakeDigest("c")} of ${evil.host}/evil/cfg:v1 is 4 GiB, larger than 8 MiB`);
    expect(evil.requests.some((p) => p.includes("/blobs/"))).toBe(false);
  });

  it("refuses layers adding up past the compressed limit, naming the layer, before downloading any", async () => {
    const config = json({ architecture: hostArch, os: "linux", rootfs: { type: "layers", diff_ids: [] } });
    const configDigest = `sha256:${new Bun.CryptoHasher("sha256").update(config).digest("hex")}`;
    const layer = (c: string) => ({ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: fakeDigest(c), size: 5 * 1024 * MiB });
    const manifest = json({ schemaVersion: 2, mediaType: ociManifest, config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: configDigest, size: config.byteLength }, layers: [layer("a"), layer("b")] });
    await using evil = startHostileRegistry({
      "/v2/evil/fat/manifests/v1": { kind: "doc", body: manifest, contentType: ociManifest },
      [`/v2/evil/fat/blobs/${configDigest}`]: { kind: "doc", body: config, contentType: "application/octet-stream" },
    });
    const err = await newStore()
      .pull(`${evil.host}/evil/fat:v1`)
      .catch((e: Error) => e);
    expect(String(err)).toContain(`layer ${fakeDigest("b")} of ${evil.host}/evil/fat:v1 takes the image's compressed size to 10 GiB, over the 8 GiB limit`);
    expect(evil.requests.filter((p) => p.includes("/blobs/"))).toEqual([`/v2/evil/fat/blobs/${configDigest}`]);
  });

  it("stops a zstd bomb from a registry at the expansion limit, naming the layer digest", async () => {
    const bomb = makeLayer([{ path: "zeros", declaredSize: 4 * 1024 * MiB }], "zstd");
    const img = makeImage([base.layers[0]!, bomb]);
    await pushImage({ base: reg.base, repo: "evil/bomb" }, img, "v1");
    const store = newStore();
    const err = await store.pull(`${reg.host}/evil/bomb:v1`).catch((e: Error) => e);
    expect(String(err)).toContain(`layer ${bomb.digest} expands the image to 4 GiB at "zeros", more than 100 times`);
    expect(readdirSync(store.blobs.tmpDir)).toEqual([]);
  });
});

describe("offline inputs", () => {
  it("pulls from an OCI layout directory by tag, including a multi-platform index", async () => {
    const dir = join(work, "layout");
    const other = hostArch === "amd64" ? "arm64" : "amd64";
    const foreign = makeImage([makeLayer([{ path: "arch", content: other }])], { architecture: other });
    const index = makeIndex([foreign, base]);
    writeOciLayout(dir, [base, foreign], "v1", index);
    const store = newStore();
    const rec = await store.pull(`oci:${dir}:v1`);
    expect(rec).toMatchObject({ ref: `oci:${dir}:v1`, digest: base.manifest.digest, index_digest: index.digest, config_digest: base.config.digest });
    expect(await ext4Stat(rec.rootfs, "/bin/busybox")).toBeDefined();
    await expect(store.pull(`oci:${dir}:v2`)).rejects.toThrow('tag "v2" not found in OCI layout');
  });

  it("pulls a layout written by skopeo from the registry", async () => {
    const dir = join(work, "skopeo-layout");
    const p = Bun.spawn(["skopeo", "copy", "--src-tls-verify=false", `docker://${reg.host}/test/layered:latest`, `oci:${dir}:latest`], { stdout: "pipe", stderr: "pipe" });
    const [, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    expect(err).toBe("");
    expect(code).toBe(0);
    const rec = await newStore().pull(`oci:${dir}:latest`);
    expect(rec.config_digest).toBe(layered.config.digest);
    expect((await ext4Ls(rec.rootfs, "/data")).map((e) => e.name)).not.toContain("gone");
  });

  it("pulls from a docker-archive tarball and checks layers against diff_ids", async () => {
    const file = join(work, "save.tar");
    await writeDockerArchive(file, join(work, "save"), layered, "test/layered:latest");
    const store = newStore();
    const rec = await store.pull(`docker-archive:${file}`);
    expect(rec.config_digest).toBe(layered.config.digest);
    expect(rec.layers.map((l) => l.digest)).toEqual(layered.layers.map((l) => l.diffId));
    expect((await ext4Ls(rec.rootfs, "/opq")).map((e) => e.name)).toContain("new");
    expect(readdirSync(store.blobs.tmpDir)).toEqual([]);
    await expect(store.pull(`docker-archive:${join(work, "missing.tar")}`)).rejects.toThrow("does not exist");
  });
});

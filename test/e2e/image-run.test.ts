/**
 * Images end to end: a test image is built and pushed to a real local
 * registry, pulled through the daemon, booted as a task's rootfs, and
 * published as an app release.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { existsSync } from "node:fs";
import { busyboxLayer, makeImage, makeLayer, type TestImage } from "../helpers/oci-build.ts";
import { pushImage } from "../helpers/oci-push.ts";
import { startRegistry, type TestRegistry } from "../helpers/registry.ts";
import { TestHome } from "../helpers/aegis.ts";

const TIMEOUT = 120_000;
let reg: TestRegistry;
let home: TestHome;
let image: TestImage;
let ref: string;

beforeAll(async () => {
  reg = await startRegistry();
  const marker = makeLayer([
    { path: "etc/", type: "Directory" },
    { path: "etc/image-marker", content: "from the pulled image\n" },
    { path: "work/", type: "Directory" },
  ]);
  image = makeImage([await busyboxLayer(), marker], { workingDir: "/work", env: ["PATH=/bin:/sbin", "IGNORED=yes"] });
  await pushImage({ base: reg.base, repo: "e2e/app" }, image, "v1");
  ref = `${reg.host}/e2e/app:v1`;
  home = new TestHome();
  await home.ok(["up"]);
}, TIMEOUT);

afterAll(async () => {
  await home?.[Symbol.asyncDispose]();
  await reg?.[Symbol.asyncDispose]();
});

describe("images end to end", () => {
  it("pulls an image and lists it", async () => {
    const pulled = await home.ok(["image", "pull", ref]);
    expect(pulled.stdout.trim()).toBe(image.manifest.digest);
    expect(pulled.stderr).toContain(`Pulling ${ref}`);
    const list = (await home.ok(["image", "list"])).stdout;
    expect(list.split("\n")[0]).toMatch(/^REF\s+DIGEST\s+SIZE\s+CREATED$/);
    expect(list).toContain(ref);
  }, TIMEOUT);

  it("runs a command in the pulled image with its PATH and WorkingDir, not its other ENV", async () => {
    const r = await home.run(["run", "--image", ref, "--", "sh", "-c", 'cat /etc/image-marker; pwd; echo "$PATH|${IGNORED:-unset}"']);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("from the pulled image\n/work\n/bin:/sbin|unset\n");
    expect(r.code).toBe(0);
  }, TIMEOUT);

  it("publishes app releases pinned to the image digest and keeps their files after image rm", async () => {
    await home.ok(["app", "create", "--name", "imgapp", "--image", ref, "--", "httpd", "-f"]);
    const v1 = await home.ok(["app", "publish", "imgapp", "--label", "v1"]);
    expect(v1.stderr).toMatch(/Published release rel-[0-9a-f]+ \(label=v1\)\n$/);
    const second = await home.ok(["app", "publish", "imgapp"]);
    expect(second.stderr).toMatch(/Published release rel-[0-9a-f]+\n$/);
    const dup = await home.run(["app", "publish", "imgapp", "--label", "v1"]);
    expect(dup.code).toBe(1);
    expect(dup.stderr).toContain('already has a release labelled "v1"');
    const info = (await home.ok(["app", "info", "imgapp"])).stdout;
    const releases = info.slice(info.indexOf("Releases (2):")).split("\n").slice(1, 3);
    expect(releases[0]).toMatch(/^ {2}rel-[0-9a-f]+$/);
    expect(releases[1]).toMatch(/^ {2}rel-[0-9a-f]+ \(v1\)$/);
    const json = JSON.parse((await home.ok(["app", "info", "imgapp", "--json"])).stdout);
    expect(json.releases[0].image_digest).toBe(image.manifest.digest);

    const record = JSON.parse((await home.ok(["image", "pull", ref, "--json"])).stdout);
    expect((await home.ok(["image", "rm", ref])).stderr).toContain(`Image ${record.ref} removed`);
    expect(existsSync(record.rootfs)).toBe(true);
    await home.ok(["app", "delete", "imgapp"]);
    await home.ok(["image", "gc"]);
    expect(existsSync(record.rootfs)).toBe(false);
  }, TIMEOUT);

  it("rejects bad references before doing anything", async () => {
    const bad = await home.run(["image", "pull", "Bad Ref::x"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/invalid image reference|reference/);
    const run = await home.run(["run", "--image", "UPPER/Case:tag", "--", "true"]);
    expect(run.code).toBe(1);
    expect(JSON.parse((await home.ok(["image", "list", "--json"])).stdout)).toEqual([]);
  }, TIMEOUT);
});

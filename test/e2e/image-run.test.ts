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
  image = makeImage([await busyboxLayer(), marker], { workingDir: "/work", env: ["PATH=/bin:/sbin", "IMAGE_ENV=yes"] });
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

  it("runs a command in the pulled image with its Env (PATH included) and WorkingDir", async () => {
    const r = await home.run(["run", "--image", ref, "--", "sh", "-c", 'cat /etc/image-marker; pwd; echo "$PATH|${IMAGE_ENV:-unset}"']);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("from the pulled image\n/work\n/bin:/sbin|yes\n");
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

  it("serves an app's latest release, keeps its image while an instance uses it, and mounts a workspace", async () => {
    await home.ok(["image", "pull", ref]);
    await home.ok(["app", "create", "--name", "site", "--image", ref, "--expose", "8080", "--", "sh", "-c", "mkdir -p /www && cat /etc/image-marker > /www/index.html && exec httpd -f -p 8080 -h /www"]);
    await home.ok(["app", "publish", "site", "--label", "v1"]);
    const { proc: serve, stderr: err } = await home.startServing(["app", "serve", "site"]);
    expect(err).toMatch(/^Serving site on http:\/\/127\.0\.0\.1:\d+\nInstance: inst-[0-9a-f]+\nPress Ctrl\+C to stop\n$/);
    const url = /on (http:\/\/\S+)/.exec(err)![1]!;
    expect(await (await fetch(url)).text()).toBe("from the pulled image\n");
    const inUse = await home.run(["image", "rm", ref]);
    expect(inUse.code).toBe(1);
    expect(inUse.stderr).toContain("is used by instance");
    // The spec: app delete stops the app's running instances (here the one app serve runs).
    const id = /Instance: (inst-[0-9a-f]+)/.exec(err)![1]!;
    expect((await home.ok(["app", "delete", "site"])).stderr).toBe('App "site" deleted\n');
    expect(JSON.parse((await home.ok(["instance", "info", id, "--json"])).stdout).state).toBe("stopped");
    expect((await home.run(["app", "info", "site"])).code).toBe(1);
    serve.kill("SIGINT");
    expect(await serve.exited).toBe(130);

    // A named workspace: guest writes land on the host at once and survive a stop/start.
    await home.ok(["instance", "start", "--name", "ws", "--workspace", "notes", "--pause-after", "0", "--", "sleep", "100000"]);
    await home.ok(["exec", "ws", "--", "sh", "-c", "echo from-guest > /workspace/out.txt"]);
    const hostFile = `${home.dir}/data/workspaces/notes/out.txt`;
    expect(await Bun.file(hostFile).text()).toBe("from-guest\n");
    await Bun.write(`${home.dir}/data/workspaces/notes/in.txt`, "from-host\n");
    await home.ok(["instance", "stop", "ws"]);
    await home.ok(["instance", "start", "--name", "ws"]);
    expect((await home.ok(["exec", "ws", "--", "cat", "/workspace/in.txt", "/workspace/out.txt"])).stdout).toBe("from-host\nfrom-guest\n");
    await home.ok(["instance", "delete", "ws"]);
    expect(await Bun.file(hostFile).exists()).toBe(true);
  }, TIMEOUT);

  it("rejects bad references before doing anything", async () => {
    const bad = await home.run(["image", "pull", "Bad Ref::x"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/invalid image reference|reference/);
    const run = await home.run(["run", "--image", "UPPER/Case:tag", "--", "true"]);
    expect(run.code).toBe(1);
    expect(JSON.parse((await home.ok(["image", "list", "--json"])).stdout).map((i: { ref: string }) => i.ref)).not.toContain("docker.io/upper/case:tag");
  }, TIMEOUT);
});

/**
 * A real Debian image behaves as `docker run` users expect: bare names run
 * the image's own programs (GNU ls, dash), not the harness's busybox; the
 * image's Entrypoint, Cmd, Env, WorkingDir and User apply with Docker's
 * override rules; a served image starts its default process with no command.
 * The image is built from Debian's archive by the tests (debootstrap +
 * umoci, cached per machine) and pushed with skopeo to a local registry.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { debianImage, pushDebianImage, type DebianTag } from "../helpers/debian-image.ts";
import { startRegistry, type TestRegistry } from "../helpers/registry.ts";
import { TestHome } from "../helpers/aegis.ts";

const SETUP_TIMEOUT = 15 * 60_000;
const TIMEOUT = 180_000;
let reg: TestRegistry;
let home: TestHome;
let refs: Record<DebianTag, string>;

beforeAll(async () => {
  reg = await startRegistry();
  refs = await pushDebianImage(await debianImage(), reg.host);
  home = new TestHome();
  await home.ok(["up"]);
  for (const tag of ["bookworm", "app", "server"] as const) await home.ok(["image", "pull", refs[tag]]);
}, SETUP_TIMEOUT);

afterAll(async () => {
  await home?.[Symbol.asyncDispose]();
  await reg?.[Symbol.asyncDispose]();
});

describe("a real Debian image", () => {
  it("runs the image's GNU ls and dash for bare names, never busybox's applets", async () => {
    const r = await home.run(["run", "--image", refs.bookworm, "--", "sh", "-c", "ls --version | head -n1; readlink /proc/$$/exe; command -v id"]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("ls (GNU coreutils) 9.1\n/usr/bin/dash\n/usr/bin/id\n");
    expect(r.code).toBe(0);
  }, TIMEOUT);

  it("runs Entrypoint + Cmd without a command, and arguments replace Cmd only", async () => {
    const bare = await home.run(["run", "--image", refs.app]);
    expect(bare.stdout).toBe("entry default cmd\n");
    const args = await home.run(["run", "--image", refs.app, "--", "given", "args"]);
    expect(args.stdout).toBe("entry given args\n");
    expect([bare.code, args.code]).toEqual([0, 0]);
  }, TIMEOUT);

  it("applies the image's User (with supplementary groups), WorkingDir and Env, and --entrypoint/-u/-w/--env override them", async () => {
    const image = await home.run(["run", "--image", refs.app, "--entrypoint", "/bin/sh", "--", "-c", 'id; pwd; echo "$GREETING|$HOME"; cat hello.txt']);
    expect(image.stderr).toBe("");
    expect(image.stdout.split("\n").slice(0, 3)).toEqual(["uid=1000(app) gid=1000(app) groups=1000(app),29(audio),1500(extra)", "/srv/app", "hello from the image|/home/app"]);
    expect(image.code).toBe(0);
    const over = await home.run(["run", "--image", refs.app, "--entrypoint", "", "-u", "0:29", "-w", "/tmp", "--env", "GREETING=over", "--", "sh", "-c", 'id -u; id -g; pwd; echo "$GREETING"']);
    expect(over.stdout).toBe("0\n29\n/tmp\nover\n");
    const unknown = await home.run(["run", "--image", refs.app, "-u", "nosuchuser", "--", "true"]);
    expect(unknown.code).toBe(127);
    expect(unknown.stderr).toContain("unable to find user nosuchuser");
  }, TIMEOUT);

  it("serves an image with no command given: its default process answers through the router", async () => {
    await home.ok(["instance", "start", "--name", "web", "--image", refs.server, "--expose", "8080"]);
    const status = JSON.parse((await home.ok(["status", "--json"])).stdout);
    const res = await fetch(`${status.router_url}/web/`);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain("hello from the debian server image");
    const info = (await home.ok(["instance", "info", "web"])).stdout;
    expect(info).toMatch(/Command:\s+busybox httpd -f -p 8080 -h \/srv\/www/);
    const inspect = JSON.parse((await home.ok(["image", "inspect", refs.server])).stdout);
    expect(inspect.config.exposed_ports).toEqual(["8080/tcp"]);
    await home.ok(["instance", "delete", "web"]);
  }, TIMEOUT);
});

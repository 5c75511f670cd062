import { afterEach, describe, expect, it } from "bun:test";
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RootfsBuilder, runConfig } from "../../../src/daemon/images/rootfs.ts";
import { makeLayer } from "../../helpers/oci-build.ts";
import { ext4Cat, ext4Raw, ext4Stat } from "../../helpers/oci-ext4.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const CFG = `sha256:${"c".repeat(64)}`;

function setup() {
  const dir = mkdtempSync(join(tmpdir(), "aegis-rootfs-"));
  dirs.push(dir);
  const layer = makeLayer([
    { path: "etc/", type: "Directory" },
    { path: "etc/hostname", content: "aegis\n" },
    { path: "etc/shadow", content: "root:*:1::::::\n", mode: 0o640, gid: 42 },
    { path: "bin/su", content: "x", mode: 0o4755 },
    { path: "home/u/", type: "Directory", uid: 1000, gid: 1000, mode: 0o700 },
    { path: "home/u/notes", content: "n", uid: 1000, gid: 1000, mode: 0o600 },
    { path: "locked", content: "", mode: 0o000 },
    { path: "dev/null", type: "CharacterDevice", devmaj: 1, devmin: 3, mode: 0o666 },
    { path: "a name with \"quotes\"", content: "q", uid: 7 },
  ]);
  const path = join(dir, "layer");
  writeFileSync(path, layer.bytes);
  return { dir, layers: [{ path, digest: layer.digest }] };
}

describe("rootfs", () => {
  it("builds an ext4 whose files, owners, modes and device nodes match the layers", async () => {
    const { dir, layers } = setup();
    const b = new RootfsBuilder(join(dir, "images"));
    const img = await b.ensure(CFG, layers);
    expect(img).toBe(join(dir, "images", "rootfs", `${"c".repeat(64)}.ext4`));
    expect(await ext4Cat(img, "/etc/hostname")).toBe("aegis\n");
    expect(await ext4Stat(img, "/etc/shadow")).toMatchObject({ mode: 0o100640, uid: 0, gid: 42 });
    expect(await ext4Stat(img, "/bin/su")).toMatchObject({ mode: 0o104755 });
    expect(await ext4Stat(img, "/home/u")).toMatchObject({ mode: 0o40700, uid: 1000, gid: 1000 });
    expect(await ext4Stat(img, "/home/u/notes")).toMatchObject({ mode: 0o100600, uid: 1000 });
    expect(await ext4Stat(img, "/locked")).toMatchObject({ mode: 0o100000 });
    expect(await ext4Stat(img, "/dev/null")).toMatchObject({ mode: 0o20666 });
    expect(await ext4Stat(img, '/a name with "quotes"')).toMatchObject({ uid: 7 });
    expect(await ext4Raw(img, "stat /dev/null")).toMatch(/Device major\/minor number: 01:03/);
    expect(await ext4Stat(img, "/tmp")).toMatchObject({ mode: 0o41777 });
    expect(await ext4Stat(img, "/proc")).toMatchObject({ mode: 0o40555 });
    expect(await ext4Raw(img, "stats")).toMatch(/Filesystem volume name:\s+aegis-root/);
    expect(readdirSync(join(dir, "images", "tmp"))).toEqual([]);
  });

  it("builds once for concurrent requests, in one process and across builders sharing the directory", async () => {
    const { dir, layers } = setup();
    const a = new RootfsBuilder(join(dir, "images"));
    const b = new RootfsBuilder(join(dir, "images"));
    const paths = await Promise.all([a.ensure(CFG, layers), a.ensure(CFG, layers), b.ensure(CFG, layers)]);
    expect(new Set(paths).size).toBe(1);
    expect(a.builds + b.builds).toBe(1);
    expect(existsSync(`${paths[0]}.lock`)).toBe(false);
  });

  it("keeps the run fields of the image config, empty values as unset", () => {
    const config = {
      config: { Env: ["A=1", "PATH=/x:/y"], WorkingDir: "/app", Entrypoint: ["/e"], Cmd: ["c", "d"], User: "app:staff", ExposedPorts: { "80/tcp": {}, "53/udp": {} }, StopSignal: "SIGQUIT", Labels: { a: "b" } },
    };
    expect(runConfig(config)).toEqual({
      entrypoint: ["/e"],
      cmd: ["c", "d"],
      env: ["A=1", "PATH=/x:/y"],
      working_dir: "/app",
      user: "app:staff",
      exposed_ports: ["80/tcp", "53/udp"],
      stop_signal: "SIGQUIT",
      labels: { a: "b" },
    });
    expect(runConfig({ config: { Entrypoint: [], Cmd: null, WorkingDir: "", User: "" } })).toEqual({
      entrypoint: null,
      cmd: null,
      env: [],
      working_dir: null,
      user: null,
      exposed_ports: [],
      stop_signal: null,
      labels: {},
    });
    expect(runConfig({ config: null }).env).toEqual([]);
  });
});

describe("rootfs without root", () => {
  const canDrop = process.getuid?.() === 0 && Bun.which("runuser") !== null;
  it.skipIf(!canDrop)("gives the same owners, modes and device nodes when built by an unprivileged user", async () => {
    const dir = mkdtempSync(join(tmpdir(), "aegis-rootfs-nobody-"));
    dirs.push(dir);
    chmodSync(dir, 0o777);
    const script = join(dir, "build.ts");
    const src = (m: string) => JSON.stringify(join(import.meta.dir, m));
    writeFileSync(
      script,
      `import { RootfsBuilder } from ${src("../../../src/daemon/images/rootfs.ts")};
import { makeLayer } from ${src("../../helpers/oci-build.ts")};
import { writeFileSync } from "node:fs";
const layer = makeLayer([{ path: "etc/shadow", content: "s", mode: 0o640, gid: 42 }, { path: "ro/", type: "Directory", mode: 0o555 }, { path: "ro/f", content: "f", mode: 0 }, { path: "dev/null", type: "CharacterDevice", devmaj: 1, devmin: 3, mode: 0o666 }]);
writeFileSync(${JSON.stringify(join(dir, "l"))}, layer.bytes);
const img = await new RootfsBuilder(${JSON.stringify(join(dir, "images"))}).ensure("sha256:${"e".repeat(64)}", [{ path: ${JSON.stringify(join(dir, "l"))}, digest: layer.digest }]);
console.log(JSON.stringify({ img, uid: process.getuid() }));
`,
    );
    const p = Bun.spawn(["runuser", "-u", "nobody", "--", process.execPath, script], { stdout: "pipe", stderr: "pipe", env: { PATH: `/usr/sbin:/sbin:${process.env.PATH}`, HOME: dir } });
    const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    expect(err).toBe("");
    expect(code).toBe(0);
    const { img, uid } = JSON.parse(out) as { img: string; uid: number };
    expect(uid).not.toBe(0);
    expect(await ext4Stat(img, "/etc/shadow")).toMatchObject({ mode: 0o100640, uid: 0, gid: 42 });
    expect(await ext4Stat(img, "/ro")).toMatchObject({ mode: 0o40555, uid: 0 });
    expect(await ext4Stat(img, "/ro/f")).toMatchObject({ mode: 0o100000, uid: 0 });
    expect(await ext4Stat(img, "/dev/null")).toMatchObject({ mode: 0o20666, uid: 0 });
    expect((await ext4Raw(img, "ls -l /")).split("\n").find((l) => / \.\s*$/.test(l))).toMatch(/40755\s+\(2\)\s+0\s+0/);
  });
});

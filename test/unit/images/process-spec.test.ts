import { describe, expect, it } from "bun:test";
import type { ImageRunConfig } from "../../../src/api/schema/images.ts";
import { envRecord, resolveProcess } from "../../../src/daemon/images/process-spec.ts";

const config: ImageRunConfig = {
  entrypoint: ["/bin/echo", "entry"],
  cmd: ["default", "cmd"],
  env: ["PATH=/usr/bin:/bin", "GREETING=hello from the image", "EMPTY"],
  working_dir: "/srv/app",
  user: "app",
  exposed_ports: ["8080/tcp"],
  stop_signal: null,
  labels: {},
};
const image = { ref: "reg/debian:app", config };

describe("resolveProcess (docker run rules)", () => {
  it("runs Entrypoint + Cmd with the image's env, workdir and user when nothing is given", () => {
    expect(resolveProcess(image, {})).toEqual({
      argv: ["/bin/echo", "entry", "default", "cmd"],
      env: { PATH: "/usr/bin:/bin", GREETING: "hello from the image", EMPTY: "" },
      cwd: "/srv/app",
      user: "app",
    });
  });
  it("replaces Cmd with the arguments and keeps Entrypoint", () => {
    expect(resolveProcess(image, { command: ["a", "b"] }).argv).toEqual(["/bin/echo", "entry", "a", "b"]);
  });
  it("replaces Entrypoint with --entrypoint and drops the image's Cmd; an empty one clears it", () => {
    expect(resolveProcess(image, { entrypoint: ["/bin/ls"] }).argv).toEqual(["/bin/ls"]);
    expect(resolveProcess(image, { entrypoint: ["/bin/ls"], command: ["-l"] }).argv).toEqual(["/bin/ls", "-l"]);
    expect(resolveProcess(image, { entrypoint: [], command: ["id"] }).argv).toEqual(["id"]);
  });
  it("lays the request's env over the image's and lets --workdir/--user win", () => {
    const p = resolveProcess(image, { env: { GREETING: "hi", X: "1" }, workdir: "/tmp", user: "0:0" });
    expect(p.env).toEqual({ PATH: "/usr/bin:/bin", GREETING: "hi", EMPTY: "", X: "1" });
    expect(p.cwd).toBe("/tmp");
    expect(p.user).toBe("0:0");
  });
  it("refuses an image without a default command, naming the image, and a base rootfs run without one", () => {
    const bare = { ref: "reg/plain:1", config: { ...config, entrypoint: null, cmd: null } };
    expect(() => resolveProcess(bare, {})).toThrow("image reg/plain:1 has no default command");
    expect(() => resolveProcess(image, { entrypoint: [] })).toThrow("image reg/debian:app has no default command");
    expect(() => resolveProcess(null, {})).toThrow("no command");
    expect(resolveProcess(null, { command: ["true"] })).toEqual({ argv: ["true"], env: {}, cwd: null, user: null });
  });
});

describe("envRecord", () => {
  it("keeps values with '=' in them and lets later entries win", () => {
    expect(envRecord(["A=1=2", "B=x", "B=y", "=bad"])).toEqual({ A: "1=2", B: "y" });
  });
});

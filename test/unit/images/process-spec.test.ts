import { describe, expect, it } from "bun:test";
import type { ImageRecord, ImageRunConfig } from "../../../src/api/schema/images.ts";
import { envRecord, imageRunConfig, resolveProcess } from "../../../src/daemon/images/process-spec.ts";

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

describe("resolveProcess details", () => {
  it("treats an empty argument list like none: the image's Cmd runs", () => {
    expect(resolveProcess(image, { command: [] }).argv).toEqual(["/bin/echo", "entry", "default", "cmd"]);
    expect(resolveProcess(image, { entrypoint: ["/bin/ls"], command: [] }).argv).toEqual(["/bin/ls"]);
  });
  it("runs Cmd alone for an image without Entrypoint, and Entrypoint alone without Cmd", () => {
    expect(resolveProcess({ ref: "r", config: { ...config, entrypoint: null } }, {}).argv).toEqual(["default", "cmd"]);
    expect(resolveProcess({ ref: "r", config: { ...config, cmd: null } }, {}).argv).toEqual(["/bin/echo", "entry"]);
    expect(resolveProcess({ ref: "r", config: { ...config, entrypoint: null } }, { command: ["x"] }).argv).toEqual(["x"]);
  });
  it("leaves cwd and user unset (/ and root in the guest) when neither the image nor the request sets them", () => {
    const plain = { ref: "r", config: { ...config, working_dir: null, user: null, env: [] } };
    expect(resolveProcess(plain, {})).toEqual({ argv: ["/bin/echo", "entry", "default", "cmd"], env: {}, cwd: null, user: null });
  });
  it("gives the base rootfs the request's env, workdir and user", () => {
    expect(resolveProcess(null, { command: ["env"], env: { A: "1" }, workdir: "/w", user: "nobody" })).toEqual({ argv: ["env"], env: { A: "1" }, cwd: "/w", user: "nobody" });
  });
  it("says how to give a command in both refusals", () => {
    const bare = { ref: "reg/plain:1", config: { ...config, entrypoint: null, cmd: null } };
    expect(() => resolveProcess(bare, {})).toThrow(expect.objectContaining({ code: "invalid_request", hint: "give the command after --, e.g. aegis run --image IMAGE -- sh" }));
    expect(() => resolveProcess(null, {})).toThrow(expect.objectContaining({ message: "no command: give one after --", hint: "e.g. aegis run -- echo hello" }));
  });
});

describe("imageRunConfig", () => {
  const record = (over: Partial<ImageRecord>) => ({ ref: "r", env_path: null, working_dir: null, ...over }) as ImageRecord;
  it("returns the kept run config as is", () => {
    expect(imageRunConfig(record({ config }))).toBe(config);
  });
  it("reads an old record (no run config) as PATH and WorkingDir only", () => {
    expect(imageRunConfig(record({ env_path: "/usr/bin", working_dir: "/app" }))).toEqual({
      entrypoint: null, cmd: null, env: ["PATH=/usr/bin"], working_dir: "/app", user: null, exposed_ports: [], stop_signal: null, labels: {},
    });
    expect(imageRunConfig(record({})).env).toEqual([]);
    expect(imageRunConfig(record({})).working_dir).toBeNull();
  });
});

describe("envRecord edge cases", () => {
  it("reads a bare KEY as empty, keeps empty values and skips entries without a name", () => {
    expect(envRecord(["KEY", "E=", "=x", "=", "B=1"])).toEqual({ KEY: "", E: "", B: "1" });
    expect(envRecord([])).toEqual({});
  });
});

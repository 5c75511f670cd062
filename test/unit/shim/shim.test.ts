import { describe, expect, it } from "bun:test";
import { readFileSync } from "node:fs";
import { DESCRIPTOR_PATH, generateDescriptor } from "../../../scripts/shim-proto.ts";
import { parseShimArgs, socketPath } from "../../../src/shim/main.ts";
import { mountArgv } from "../../../src/shim/mounts.ts";
import { guestProcess, OciSpec, parseSpec, vmShape } from "../../../src/shim/oci-spec.ts";
import { signalName } from "../../../src/shim/process.ts";

describe("shim command line", () => {
  it("parses containerd's Go-style flags and the action", () => {
    const a = parseShimArgs(["-namespace", "k8s.io", "--address=/run/c.sock", "-publish-binary", "/usr/bin/containerd", "-id", "t1", "-debug", "start"]);
    expect(a).toMatchObject({ namespace: "k8s.io", address: "/run/c.sock", publishBinary: "/usr/bin/containerd", id: "t1", debug: true, action: "start" });
    expect(parseShimArgs(["-v"]).action).toBe("version");
  });

  it("refuses unknown flags, a flag without its value, and a missing action", () => {
    expect(() => parseShimArgs(["-bogus", "x", "start"])).toThrow("unknown flag -bogus");
    expect(() => parseShimArgs(["-id"])).toThrow("flag -id needs a value");
    expect(() => parseShimArgs(["-id", "t"])).toThrow(/no action/);
  });

  it("puts sockets beside containerd's, named by a hash of address, namespace and id", () => {
    const a = parseShimArgs(["-namespace", "n", "-address", "/tmp/x/containerd.sock", "-id", "t1", "start"]);
    const p = socketPath(a);
    expect(p).toMatch(/^\/tmp\/x\/s\/[0-9a-f]{64}$/);
    expect(socketPath({ ...a, id: "t2" })).not.toBe(p);
  });
});

describe("OCI spec", () => {
  const spec = (extra: object = {}) => parseSpec(OciSpec, JSON.stringify({ ociVersion: "1.0.2", process: { args: ["sh"], env: ["PATH=/bin", "A=b=c"], cwd: "/srv", user: { uid: 1000, gid: 100 }, terminal: true }, ...extra }), "config.json");

  it("takes args, env, cwd, user and terminal from the process", () => {
    expect(guestProcess(spec().process)).toEqual({ command: ["sh"], env: { PATH: "/bin", A: "b=c" }, cwd: "/srv", user: "1000:100", terminal: true });
    expect(guestProcess({ args: ["true"], cwd: "/", user: { uid: 0, gid: 0 } })).toEqual({ command: ["true"], env: {}, terminal: false });
  });

  it("sizes the VM from the memory limit (plus guest overhead) and the CPU quota", () => {
    expect(vmShape(spec())).toEqual({});
    expect(vmShape(spec({ linux: { resources: { memory: { limit: 256 * 1024 * 1024 }, cpu: { quota: 150000, period: 100000 } } } }))).toEqual({ memory_mb: 384, vcpus: 2 });
    expect(vmShape(spec({ linux: { resources: { memory: { limit: 8 * 1024 * 1024 } } } }))).toEqual({ memory_mb: 256 });
  });

  it("names what is wrong in an unusable spec", () => {
    expect(() => parseSpec(OciSpec, "{", "b/config.json")).toThrow(/b\/config.json is not valid JSON/);
    expect(() => parseSpec(OciSpec, JSON.stringify({ process: { args: [] } }), "b/config.json")).toThrow("process.args: process.args must name a program");
  });
});

describe("rootfs mounts and signals", () => {
  it("builds mount(8) argv for overlay and bind mounts", () => {
    expect(mountArgv({ type: "overlay", source: "overlay", options: ["index=off", "lowerdir=/a:/b"] }, "/r")).toEqual(["mount", "-t", "overlay", "-o", "index=off,lowerdir=/a:/b", "overlay", "/r"]);
    expect(mountArgv({ type: "bind", source: "/snap", options: ["rbind", "rw"] }, "/r")).toEqual(["mount", "-o", "rbind,rw", "/snap", "/r"]);
  });

  it("maps signal numbers to names and refuses unknown ones", () => {
    expect(signalName(9)).toBe("SIGKILL");
    expect(signalName(15)).toBe("SIGTERM");
    expect(() => signalName(999)).toThrow("unknown signal number 999");
  });
});

describe("protobuf descriptor", () => {
  it("is what the Debian containerd .proto files generate (no drift, nothing hand-edited)", () => {
    expect(readFileSync(DESCRIPTOR_PATH, "utf8")).toBe(generateDescriptor());
  });
});

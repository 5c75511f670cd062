import { describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { containerRootPath } from "../../../guest/harness/container-root.ts";
import { ExecRequest, InstanceCreate } from "../../../src/api/schema/instances.ts";
import { groupingId, podDirs, podRole } from "../../../src/shim/sandbox.ts";
import { rootfsVirtiofsdArgv } from "../../../src/vmm/virtiofsd.ts";

const cri = (type: string, sandbox: string, extra: object = {}) => JSON.stringify({ annotations: { "io.kubernetes.cri.container-type": type, "io.kubernetes.cri.sandbox-id": sandbox }, ...extra });

describe("CRI pod roles", () => {
  it("reads the sandbox, its network namespace, and the containers of a pod from the annotations", () => {
    const netns = { linux: { namespaces: [{ type: "pid" }, { type: "network", path: "/var/run/netns/cni-1" }] } };
    expect(podRole(cri("sandbox", "s1", netns), "s1")).toEqual({ kind: "sandbox", sandboxId: "s1", annotations: expect.any(Object), netnsPath: "/var/run/netns/cni-1" });
    expect(podRole(cri("sandbox", "s1"), "s1")).toEqual({ kind: "sandbox", sandboxId: "s1", annotations: { "io.kubernetes.cri.container-type": "sandbox", "io.kubernetes.cri.sandbox-id": "s1" } });
    expect(podRole(cri("container", "s1"), "c1")).toEqual({ kind: "container", sandboxId: "s1" });
  });

  it("treats a bundle without CRI annotations (ctr run) as a VM of its own", () => {
    expect(podRole(JSON.stringify({ process: { args: ["sh"] } }), "t1")).toEqual({ kind: "solo" });
    expect(podRole(JSON.stringify({ annotations: { "io.kubernetes.cri.container-type": "container" } }), "t1")).toEqual({ kind: "solo" });
  });

  it("groups a pod's tasks under the sandbox id (one shim per pod), others under their own id", () => {
    const dir = mkdtempSync(join(tmpdir(), "grp-"));
    try {
      expect(groupingId(dir, "t1")).toBe("t1");
      writeFileSync(join(dir, "config.json"), cri("container", "s9"));
      expect(groupingId(dir, "c1")).toBe("s9");
      writeFileSync(join(dir, "config.json"), cri("sandbox", "s9"));
      expect(groupingId(dir, "s9")).toBe("s9");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("keeps the pod's share and staging point in the sandbox bundle", () => {
    expect(podDirs("/run/b/s1")).toEqual({ share: "/run/b/s1/pod", stage: "/run/b/s1/pod-stage" });
  });
});

describe("container roots in a pod VM", () => {
  it("resolves a relative subdirectory under the VM root and refuses escapes", () => {
    expect(containerRootPath("/mnt/root", "abc")).toBe("/mnt/root/abc");
    expect(containerRootPath("/mnt/root", "./a//b")).toBe("/mnt/root/a/b");
    expect(() => containerRootPath("/mnt/root", "../etc")).toThrow(/without/);
    expect(() => containerRootPath("/mnt/root", "a/../../x")).toThrow(/without/);
    expect(() => containerRootPath("/mnt/root", "/abs")).toThrow(/relative/);
    expect(() => containerRootPath(undefined, "a")).toThrow(/root filesystem/);
  });

  it("accepts root_subdir in exec requests only as a relative path without ..", () => {
    expect(ExecRequest.safeParse({ command: ["sh"], root_subdir: "c1" }).success).toBe(true);
    expect(ExecRequest.safeParse({ command: ["sh"], root_subdir: "../c1" }).success).toBe(false);
    expect(ExecRequest.safeParse({ command: ["sh"], root_subdir: "a/../b" }).success).toBe(false);
    expect(ExecRequest.safeParse({ command: ["sh"], root_subdir: "/c1" }).success).toBe(false);
    expect(ExecRequest.safeParse({ command: ["sh"], root_subdir: "a..b" }).success).toBe(true);
  });

  it("takes an absolute netns_path at instance creation", () => {
    expect(InstanceCreate.safeParse({ rootfs_dir: "/r", netns_path: "/var/run/netns/cni-1" }).success).toBe(true);
    expect(InstanceCreate.safeParse({ rootfs_dir: "/r", netns_path: "cni-1" }).success).toBe(false);
  });

  it("serves a root filesystem from a slave mount namespace, so the pod's later mounts reach virtiofsd", () => {
    const argv = rootfsVirtiofsdArgv("/v", "/b/pod", "/s/vfs.sock");
    expect(argv.slice(1, 4)).toEqual(["--mount", "--propagation", "slave"]);
  });
});

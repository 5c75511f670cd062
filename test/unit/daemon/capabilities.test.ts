/**
 * The spawn capability policy: defaults, every limit of checkSpawn, the
 * narrowing of child capabilities, image patterns, exposes and ownership.
 */
import { describe, expect, it } from "bun:test";
import { SpawnCapabilities as CapsSchema } from "../../../src/api/schema/mcp.ts";
import {
  checkExpose,
  checkImage,
  checkOwnership,
  checkSpawn,
  DEFAULT_CAPABILITIES,
  type Denied,
  ownChildren,
  SpawnCapabilities,
  type SpawnRequest,
} from "../../../src/daemon/instances/capabilities.ts";

const caps = (over: Partial<SpawnCapabilities> = {}): SpawnCapabilities =>
  SpawnCapabilities.parse({ spawn: true, max_depth: 2, max_children: 3, allowed_images: ["busybox", "docker.io/library/python:3.12-*"], max_memory_mb: 1024, max_vcpus: 2, allowed_secrets: ["API_KEY", "DB_URL"], max_exposed_ports: 2, ...over });
const req = (over: Partial<SpawnRequest> = {}): SpawnRequest => ({ image: "busybox", memory_mb: 256, vcpus: 1, secrets: [], expose: [], ...over });
const parent = (over: { caps?: SpawnCapabilities; depth?: number; children?: number } = {}) => ({ caps: caps(), depth: 0, children: 0, ...over });

function denied(d: { ok: boolean }): Denied {
  expect(d.ok).toBe(false);
  return d as Denied;
}

describe("SpawnCapabilities schema", () => {
  it("grants no spawning by default", () => {
    expect(DEFAULT_CAPABILITIES).toEqual({ spawn: false, max_depth: 1, max_children: 4, allowed_images: [], max_memory_mb: 512, max_vcpus: 1, allowed_secrets: [], max_exposed_ports: 4 });
    expect(denied(checkSpawn({ caps: DEFAULT_CAPABILITIES, depth: 0, children: 0 }, req())).limit).toBe("spawn");
  });

  it("fills unnamed fields from the defaults", () => {
    // Written out, not read from DEFAULT_CAPABILITIES (itself the schema's output), so a changed default shows.
    expect(CapsSchema.parse({ spawn: true, allowed_images: ["busybox"] })).toEqual({ spawn: true, max_depth: 1, max_children: 4, allowed_images: ["busybox"], max_memory_mb: 512, max_vcpus: 1, allowed_secrets: [], max_exposed_ports: 4 });
  });

  it("is strict and range-checked", () => {
    expect(CapsSchema.safeParse({ spwan: true }).success).toBe(false);
    expect(CapsSchema.safeParse({ max_children: -1 }).success).toBe(false);
    expect(CapsSchema.safeParse({ max_depth: 1.5 }).success).toBe(false);
    expect(CapsSchema.safeParse({ allowed_secrets: ["NOT-A-NAME"] }).success).toBe(false);
    expect(CapsSchema.safeParse({ allowed_images: ["docker.io/*/x"] }).success).toBe(false);
    expect(CapsSchema.safeParse({ allowed_images: ["has space"] }).success).toBe(false);
    expect(CapsSchema.safeParse({ allowed_images: [""] }).success).toBe(false);
  });
});

describe("checkSpawn", () => {
  it("allows a request inside every limit and returns the child's depth", () => {
    const d = checkSpawn(parent(), req({ memory_mb: 1024, vcpus: 2, secrets: ["API_KEY"], expose: [80, 443] }));
    expect(d.ok).toBe(true);
    if (d.ok) expect(d.depth).toBe(1);
  });

  it("refuses when spawn is off", () => {
    const d = denied(checkSpawn(parent({ caps: caps({ spawn: false }) }), req()));
    expect(d.reason).toBe("this instance may not start child instances (capability spawn is false)");
    expect(d.hint).toContain("kit manifest");
  });

  it("refuses a child beyond max_depth and allows one at it", () => {
    expect(denied(checkSpawn(parent({ depth: 2 }), req())).reason).toBe("a child would be at depth 3, beyond max_depth 2");
    expect(checkSpawn(parent({ depth: 1 }), req()).ok).toBe(true);
    expect(denied(checkSpawn(parent({ caps: caps({ max_depth: 0 }) }), req())).limit).toBe("max_depth");
  });

  it("refuses at max_children and allows one below it", () => {
    const d = denied(checkSpawn(parent({ children: 3 }), req()));
    expect(d.limit).toBe("max_children");
    expect(d.reason).toBe("this instance already has 3 child instance(s); max_children is 3");
    expect(d.hint).toContain("delete: true");
    expect(checkSpawn(parent({ children: 2 }), req()).ok).toBe(true);
    expect(denied(checkSpawn(parent({ caps: caps({ max_children: 0 }) }), req())).limit).toBe("max_children");
  });

  it("refuses an image outside allowed_images, naming the image and the list", () => {
    const d = denied(checkSpawn(parent(), req({ image: "ubuntu:24.04" })));
    expect(d.limit).toBe("allowed_images");
    expect(d.reason).toBe('image "ubuntu:24.04" (docker.io/library/ubuntu:24.04) is not in allowed_images (busybox, docker.io/library/python:3.12-*)');
  });

  it("says none when no image is allowed", () => {
    expect(denied(checkSpawn(parent({ caps: caps({ allowed_images: [] }) }), req())).reason).toContain("is not in allowed_images (none)");
  });

  it("refuses a malformed image reference with the parser's message", () => {
    const d = denied(checkSpawn(parent(), req({ image: "Busy Box" })));
    expect(d.limit).toBe("image");
    expect(d.reason).toContain('invalid image reference "Busy Box"');
  });

  it("refuses memory above max_memory_mb and allows it at the limit", () => {
    const d = denied(checkSpawn(parent(), req({ memory_mb: 1025 })));
    expect(d.limit).toBe("max_memory_mb");
    expect(d.reason).toBe("memory_mb 1025 exceeds max_memory_mb 1024");
    expect(checkSpawn(parent(), req({ memory_mb: 1024 })).ok).toBe(true);
  });

  it("refuses vCPUs above max_vcpus", () => {
    const d = denied(checkSpawn(parent(), req({ vcpus: 3 })));
    expect(d.limit).toBe("max_vcpus");
    expect(d.reason).toBe("vcpus 3 exceeds max_vcpus 2");
    expect(d.hint).toBe("ask for at most 2 vCPU(s)");
  });

  it("tells the guest what it may ask for in every resource refusal", () => {
    expect(denied(checkSpawn(parent(), req({ memory_mb: 4096 }))).hint).toBe("ask for at most 1024 MiB");
    expect(denied(checkSpawn(parent(), req({ expose: [1, 2, 3] }))).hint).toBe("expose at most 2 port(s)");
    expect(denied(checkSpawn(parent(), req({ secrets: ["ROOT"] }))).hint).toBe("pass only the secrets self_info lists under capabilities.allowed_secrets");
    expect(denied(checkSpawn(parent({ depth: 2 }), req())).hint).toBe("the host grants capabilities in the kit manifest or with instance start flags; a guest cannot change its own");
  });

  it("refuses a secret outside allowed_secrets, naming it", () => {
    const d = denied(checkSpawn(parent(), req({ secrets: ["API_KEY", "ROOT_TOKEN"] })));
    expect(d.limit).toBe("allowed_secrets");
    expect(d.reason).toBe('secret "ROOT_TOKEN" is not in allowed_secrets (API_KEY, DB_URL)');
    expect(denied(checkSpawn(parent({ caps: caps({ allowed_secrets: [] }) }), req({ secrets: ["API_KEY"] }))).reason).toContain("(none)");
  });

  it("refuses more exposed ports than max_exposed_ports, counting each port once", () => {
    const d = denied(checkSpawn(parent(), req({ expose: [80, 443, 8080] })));
    expect(d.limit).toBe("max_exposed_ports");
    expect(d.reason).toBe("3 exposed port(s) exceed max_exposed_ports 2");
    expect(checkSpawn(parent(), req({ expose: [80, 80, 443] })).ok).toBe(true);
  });

  it("checks the limits in a fixed order: spawn, depth, children, image, memory, vcpus, secrets, ports", () => {
    const everything = req({ image: "ubuntu", memory_mb: 99999, vcpus: 99, secrets: ["X"], expose: [1, 2, 3] });
    const order: string[] = [];
    let c = caps({ spawn: false, max_depth: 0, max_children: 0 });
    let p = { caps: c, depth: 0, children: 0 };
    order.push(denied(checkSpawn(p, everything)).limit);
    c = { ...c, spawn: true };
    order.push(denied(checkSpawn({ ...p, caps: c }, everything)).limit);
    c = { ...c, max_depth: 1 };
    order.push(denied(checkSpawn({ ...p, caps: c }, everything)).limit);
    c = { ...c, max_children: 1 };
    order.push(denied(checkSpawn({ ...p, caps: c }, everything)).limit);
    p = { ...p, caps: { ...c, allowed_images: ["*"] } };
    order.push(denied(checkSpawn(p, everything)).limit);
    order.push(denied(checkSpawn(p, { ...everything, memory_mb: 256 })).limit);
    order.push(denied(checkSpawn(p, { ...everything, memory_mb: 256, vcpus: 1 })).limit);
    order.push(denied(checkSpawn(p, { ...everything, memory_mb: 256, vcpus: 1, secrets: [] })).limit);
    expect(order).toEqual(["spawn", "max_depth", "max_children", "allowed_images", "max_memory_mb", "max_vcpus", "allowed_secrets", "max_exposed_ports"]);
  });
});

describe("checkSpawn child capabilities", () => {
  it("narrows secrets to those given, resources to the child's own, and keeps the rest", () => {
    const d = checkSpawn(parent(), req({ memory_mb: 256, vcpus: 1, secrets: ["API_KEY", "API_KEY"] }));
    if (!d.ok) throw new Error(d.reason);
    expect(d.childCaps).toEqual({
      spawn: true,
      max_depth: 2,
      max_children: 3,
      allowed_images: ["busybox", "docker.io/library/python:3.12-*"],
      max_memory_mb: 256,
      max_vcpus: 1,
      allowed_secrets: ["API_KEY"],
      max_exposed_ports: 2,
    });
  });

  it("turns spawn off for a child at max_depth", () => {
    const d = checkSpawn(parent({ caps: caps({ max_depth: 1 }) }), req());
    if (!d.ok) throw new Error(d.reason);
    expect(d.childCaps.spawn).toBe(false);
    expect(d.depth).toBe(1);
  });

  it("never widens anything along a chain of spawns", () => {
    let p = { caps: caps({ max_depth: 3 }), depth: 0, children: 0 };
    const seen: SpawnCapabilities[] = [];
    for (;;) {
      const d = checkSpawn(p, req({ memory_mb: 512, secrets: p.caps.allowed_secrets.slice(0, 1) }));
      if (!d.ok) {
        expect(d.limit).toBe("spawn");
        break;
      }
      for (const k of ["max_memory_mb", "max_vcpus", "max_children", "max_exposed_ports", "max_depth"] as const) expect(d.childCaps[k]).toBeLessThanOrEqual(p.caps[k]);
      for (const s of d.childCaps.allowed_secrets) expect(p.caps.allowed_secrets).toContain(s);
      seen.push(d.childCaps);
      p = { caps: d.childCaps, depth: d.depth, children: 0 };
    }
    expect(seen.map((c) => c.spawn)).toEqual([true, true, false]);
    expect(seen.at(-1)!.allowed_secrets).toEqual(["API_KEY"]);
  });

  it("does not share arrays with the parent's capabilities", () => {
    const p = parent();
    const d = checkSpawn(p, req());
    if (!d.ok) throw new Error(d.reason);
    d.childCaps.allowed_images.push("ubuntu");
    expect(p.caps.allowed_images).not.toContain("ubuntu");
  });
});

describe("checkImage patterns", () => {
  const allowed = (patterns: string[], image: string) => checkImage(patterns, image) === undefined;

  it("allows the base rootfs (@base) only when @base itself is listed, not through *", () => {
    expect(allowed(["@base"], "@base")).toBe(true);
    expect(allowed(["*"], "@base")).toBe(false);
    expect(checkImage(["busybox"], "@base")).toMatchObject({ limit: "allowed_images", reason: "the base rootfs (@base) is not in allowed_images (busybox)" });
    expect(allowed(["@base"], "busybox")).toBe(false);
  });

  it("matches a bare repository pattern against every tag and digest of it", () => {
    expect(allowed(["busybox"], "busybox")).toBe(true);
    expect(allowed(["busybox"], "busybox:1.36")).toBe(true);
    expect(allowed(["busybox"], "docker.io/library/busybox:latest")).toBe(true);
    expect(allowed(["busybox"], `busybox@sha256:${"a".repeat(64)}`)).toBe(true);
    expect(allowed(["busybox"], "busyboxx")).toBe(false);
    expect(allowed(["busybox"], "ghcr.io/library/busybox")).toBe(false);
    expect(allowed(["library/busybox"], "busybox:1")).toBe(true);
  });

  it("matches a tagged or pinned pattern exactly", () => {
    expect(allowed(["python:3.12-alpine"], "python:3.12-alpine")).toBe(true);
    expect(allowed(["python:3.12-alpine"], "docker.io/library/python:3.12-alpine")).toBe(true);
    expect(allowed(["python:3.12-alpine"], "python:3.13-alpine")).toBe(false);
    expect(allowed(["python:3.12-alpine"], "python")).toBe(false);
    const pinned = `alpine@sha256:${"b".repeat(64)}`;
    expect(allowed([pinned], pinned)).toBe(true);
    expect(allowed([pinned], "alpine:latest")).toBe(false);
  });

  it("matches a registry with a port without taking the port for a tag", () => {
    expect(allowed(["localhost:5000/tools/httpd"], "localhost:5000/tools/httpd:v2")).toBe(true);
    expect(allowed(["localhost:5000/tools/httpd"], "localhost:5001/tools/httpd:v2")).toBe(false);
  });

  it("matches prefix globs against the canonical name", () => {
    expect(allowed(["docker.io/library/*"], "alpine")).toBe(true);
    expect(allowed(["docker.io/library/*"], "ghcr.io/x/alpine")).toBe(false);
    expect(allowed(["ghcr.io/org/*"], "ghcr.io/org/tool:1")).toBe(true);
    expect(allowed(["ghcr.io/org/*"], "ghcr.io/other/tool:1")).toBe(false);
    expect(allowed(["docker.io/library/python:3.12-*"], "python:3.12-slim")).toBe(true);
    expect(allowed(["docker.io/library/python:3.12-*"], "python:3.13-slim")).toBe(false);
    expect(allowed(["*"], "quay.io/any/thing:tag")).toBe(true);
  });

  it("never lets a glob allow a local oci: or docker-archive: reference (a host path)", () => {
    expect(allowed(["*"], "oci:/etc")).toBe(false);
    expect(allowed(["*"], "docker-archive:/root/x.tar")).toBe(false);
    expect(allowed(["oci:/srv/images/tool:v1"], "oci:/srv/images/tool:v1")).toBe(true);
    expect(allowed(["oci:/srv/images/tool:v1"], "oci:/srv/images/tool:v2")).toBe(false);
  });

  it("matches a local path pattern without a tag exactly, never another path or tag of it", () => {
    expect(allowed(["oci:/srv/tool"], "oci:/srv/tool")).toBe(true);
    expect(allowed(["oci:/srv/tool"], "oci:/etc")).toBe(false);
    expect(allowed(["oci:/srv/tool"], "oci:/srv/tool:v2")).toBe(false);
    expect(allowed(["docker-archive:/srv/x.tar"], "docker-archive:/srv/y.tar")).toBe(false);
    expect(allowed(["oci:/srv/tool"], "docker-archive:/srv/tool")).toBe(false);
  });

  it("refuses an image outside the list with the canonical name and where to look", () => {
    expect(checkImage(["busybox"], "alpine")).toEqual({
      ok: false,
      limit: "allowed_images",
      reason: 'image "alpine" (docker.io/library/alpine:latest) is not in allowed_images (busybox)',
      hint: "self_info lists the allowed images under capabilities.allowed_images",
    });
    expect(checkImage([], "@base")).toEqual({
      ok: false,
      limit: "allowed_images",
      reason: "the base rootfs (@base) is not in allowed_images (none)",
      hint: "self_info lists the allowed images under capabilities.allowed_images",
    });
  });

  it("refuses a malformed reference with the parser's message and hint", () => {
    const d = checkImage(["*"], "Busy Box");
    expect(d).toMatchObject({ ok: false, limit: "image" });
    expect(d?.hint).toContain("alpine:3.21");
  });

  it("treats a malformed pattern as allowing nothing", () => {
    expect(allowed(["UPPER/Case", "busybox"], "busybox")).toBe(true);
    expect(allowed(["UPPER/Case"], "upper/case")).toBe(false);
  });
});

describe("checkExpose", () => {
  const inst = (exposed: number[], max = 2) => ({ caps: caps({ max_exposed_ports: max }), exposed });

  it("allows a port while under max_exposed_ports", () => {
    expect(checkExpose(inst([]), 8080)).toEqual({ ok: true });
    expect(checkExpose(inst([80]), 8080)).toEqual({ ok: true });
  });

  it("refuses a new port at the limit, naming the port, the count and the limit", () => {
    const d = denied(checkExpose(inst([80, 443]), 8080));
    expect(d.limit).toBe("max_exposed_ports");
    expect(d.reason).toBe("cannot expose port 8080: this instance already exposes 2 port(s); max_exposed_ports is 2");
    expect(d.hint).toContain("unexpose_port");
  });

  it("allows exposing an already exposed port again, even at the limit", () => {
    expect(checkExpose(inst([80, 443]), 443)).toEqual({ ok: true });
  });

  it("refuses everything when max_exposed_ports is 0", () => {
    expect(denied(checkExpose(inst([], 0), 80)).limit).toBe("max_exposed_ports");
  });
});

describe("checkOwnership", () => {
  it("allows the caller's own child", () => {
    expect(checkOwnership("p1", { id: "c1", parent_id: "p1" }, "helper")).toEqual({ ok: true });
  });

  it("gives the same refusal for someone else's instance, a top-level one, itself and an unknown name", () => {
    const reasons = [
      checkOwnership("p1", { id: "c2", parent_id: "p2" }, "other"),
      checkOwnership("p1", { id: "t1", parent_id: null }, "other"),
      checkOwnership("p1", { id: "p1", parent_id: null }, "other"),
      checkOwnership("p1", undefined, "other"),
    ].map((d) => denied(d));
    for (const d of reasons) {
      expect(d.limit).toBe("ownership");
      expect(d.reason).toBe('instance "other" is not a child of this instance');
      expect(d.hint).toBe("instance_list shows this instance's children; a guest may inspect and stop only those");
    }
  });

  it("does not treat a grandchild as the caller's own", () => {
    expect(denied(checkOwnership("p1", { id: "g1", parent_id: "c1" }, "g1")).limit).toBe("ownership");
  });
});

describe("ownChildren", () => {
  it("keeps only the caller's direct children", () => {
    const all = [
      { id: "c1", parent_id: "p1" },
      { id: "c2", parent_id: "p2" },
      { id: "g1", parent_id: "c1" },
      { id: "t1", parent_id: null },
      { id: "c3", parent_id: "p1" },
    ];
    expect(ownChildren("p1", all).map((i) => i.id)).toEqual(["c1", "c3"]);
  });
});

import { describe, expect, it } from "bun:test";
import { DEFAULT_CAPABILITIES } from "../../../src/api/schema/capabilities.ts";
import { specDifferences } from "../../../src/daemon/instances/same-spec.ts";
import type { SpecSources } from "../../../src/daemon/instances/spec.ts";
import type { InstanceSpec } from "../../../src/daemon/registry/instances.ts";

const stored: InstanceSpec = {
  image: "alpine:3.21",
  kit: null,
  app_id: null,
  release_id: null,
  command: ["sleep", "100"],
  workdir: null,
  user: null,
  secrets: ["B", "A"],
  env: { X: "1", Y: "2" },
  expose: [
    { guest_port: 8080, public_port: null },
    { guest_port: 22, public_port: 2222 },
  ],
  workspace: "/ws/data",
  memory_mb: 512,
  vcpus: 1,
  pause_after_s: 60,
  stop_after_s: 1200,
  parent_id: null,
  depth: 0,
  capabilities: DEFAULT_CAPABILITIES,
  network: { mode: "default", rules: [] },
};
// Only the kit list is consulted, and only for kits; nothing else is reached for these requests.
const src = { kits: { list: () => [] }, workspacesDir: "/ws" } as unknown as SpecSources;

describe("specDifferences", () => {
  it("finds nothing when no field is given, or the given ones match once resolved", () => {
    expect(specDifferences({ name: "x" }, stored, src, null)).toEqual([]);
    expect(specDifferences({ name: "x", image: "alpine:3.21", command: ["sleep", "100"], secrets: ["A", "B"], env: { Y: "2", X: "1" }, expose: ["2222:22", "8080"], workspace: "data", memory_mb: 512, vcpus: 1, pause_after_s: 60, stop_after_s: 1200 }, stored, src, null)).toEqual([]);
  });
  it("names every given field that differs, with both values", () => {
    const d = specDifferences({ name: "x", command: ["true"], memory_mb: 1024, expose: ["8080"], env: { X: "1" } }, stored, src, null);
    expect(d.map((x) => x.field)).toEqual(["command", "env", "expose", "memory"]);
    expect(d[3]).toEqual({ field: "memory", stored: "512", requested: "1024" });
    expect(d[0]).toEqual({ field: "command", stored: '["sleep","100"]', requested: '["true"]' });
  });
});

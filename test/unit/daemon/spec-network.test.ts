/**
 * Which egress policy a new instance gets (instances/spec.ts): the request's,
 * else its app's, else its kit's, else the default; and an MCP child of such
 * an instance can only narrow it (api/network-policy.ts narrowPolicy).
 */
import { afterAll, describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULT_NETWORK, narrowPolicy, NetworkRuleError, type NetworkPolicy } from "../../../src/api/network-policy.ts";
import type { App } from "../../../src/api/schema/apps.ts";
import { KitManifest } from "../../../src/api/schema/kits.ts";
import { KitsService } from "../../../src/daemon/kits/service.ts";
import { buildSpec, type SpecSources } from "../../../src/daemon/instances/spec.ts";

const dir = mkdtempSync(join(tmpdir(), "ag-spec-net-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const kitPolicy: NetworkPolicy = { mode: "default", rules: [{ action: "allow", target: "api.openai.com:443" }, { action: "deny", target: "*" }] };
const appPolicy: NetworkPolicy = { mode: "default", rules: [{ action: "deny", target: "203.0.113.0/24" }] };
const kits = new KitsService(join(dir, "kits"), () => null);
kits.install(KitManifest.parse({ name: "netkit", version: "1", image: "busybox", instance: { network: kitPolicy } }));
kits.install(KitManifest.parse({ name: "plainkit", version: "1", image: "busybox" }));
const app = (network: NetworkPolicy): App => ({ id: "app-1", name: "netapp", image: "busybox", command: ["true"], expose: [], network, created_at: "", releases: [{ id: "rel-1", app_id: "app-1", label: null, image_digest: null, created_at: "" }] });
const src = (a: App): SpecSources => ({
  kits,
  apps: { get: () => a } as unknown as SpecSources["apps"],
  secrets: {} as SpecSources["secrets"],
  workspacesDir: join(dir, "ws"),
  defaults: { memoryMb: 512, vcpus: 1, pauseAfterS: 60, stopAfterS: 1200 },
});

describe("the egress policy of a new instance", () => {
  it("comes from the kit manifest when nothing else sets one", () => {
    expect(buildSpec({ kit: "netkit", command: ["true"] }, src(app(appPolicy))).network).toEqual(kitPolicy);
    expect(buildSpec({ kit: "plainkit", command: ["true"] }, src(app(appPolicy))).network).toEqual(DEFAULT_NETWORK);
  });
  it("comes from the app over the kit, and from the request over both", () => {
    expect(buildSpec({ app: "netapp", kit: "netkit" }, src(app(appPolicy))).network).toEqual(appPolicy);
    const own: NetworkPolicy = { mode: "none", rules: [] };
    expect(buildSpec({ app: "netapp", kit: "netkit", network: own }, src(app(appPolicy))).network).toEqual(own);
    expect(buildSpec({ app: "netapp" }, src(app(DEFAULT_NETWORK))).network).toEqual(DEFAULT_NETWORK);
  });
  it("is a ceiling for the instance's MCP children", () => {
    const parent = buildSpec({ kit: "netkit", command: ["true"] }, src(app(appPolicy))).network;
    expect(() => narrowPolicy(parent, { mode: "default", rules: [{ action: "allow", target: "example.com" }] })).toThrow(NetworkRuleError);
    const child = narrowPolicy(parent, { mode: "default", rules: [{ action: "allow", target: "api.openai.com:443" }] });
    expect(child.rules.at(-1)).toEqual({ action: "deny", target: "*" });
  });
  it("rejects a kit manifest whose rule does not parse, naming the rule", () => {
    const r = KitManifest.safeParse({ name: "bad", version: "1", image: "x", instance: { network: { rules: [{ action: "allow", target: "10.0.0.0/99" }] } } });
    expect(r.success).toBe(false);
    expect(JSON.stringify(r.error?.issues)).toContain('invalid network rule \\"10.0.0.0/99\\"');
  });
});

describe("a pod network instance (netns_path)", () => {
  const pod = { kit: "plainkit", command: ["true"], netns_path: "/proc/self/ns/net" };
  it("records the namespace and never pauses by default (aegisd sees none of its traffic)", () => {
    if (process.getuid?.() !== 0) {
      expect(() => buildSpec(pod, src(app(appPolicy)))).toThrow("needs aegisd to run as root");
      return;
    }
    const spec = buildSpec(pod, src(app(appPolicy)));
    expect(spec.netns_path).toBe("/proc/self/ns/net");
    expect(spec.pause_after_s).toBe(0);
    expect(buildSpec({ ...pod, pause_after_s: 30 }, src(app(appPolicy))).pause_after_s).toBe(30);
    expect(buildSpec({ kit: "plainkit", command: ["true"] }, src(app(appPolicy))).netns_path).toBeUndefined();
  });
  it("refuses an egress policy, exposed ports and a file that is not a namespace", () => {
    expect(() => buildSpec({ ...pod, network: { mode: "none", rules: [] } }, src(app(appPolicy)))).toThrow("netns_path cannot be combined with network");
    expect(() => buildSpec({ ...pod, expose: ["8080"] }, src(app(appPolicy)))).toThrow("netns_path cannot be combined with expose (8080)");
    if (process.getuid?.() === 0) expect(() => buildSpec({ ...pod, netns_path: dir }, src(app(appPolicy)))).toThrow("is not a namespace file");
  });
});

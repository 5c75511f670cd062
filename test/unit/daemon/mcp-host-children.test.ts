/**
 * mcp-host's child management as a guest sees it: `mcp.instance_list` shows
 * only the caller's own children, and `mcp.instance_stop` acts only on them,
 * answering every other name exactly as it answers a name that does not
 * exist (a guest cannot probe which instances the host runs).
 */
import { describe, expect, it } from "bun:test";
import { McpBridgeErrorCode } from "../../../src/api/schema/mcp.ts";
import { mcpEnv, ok, refused } from "../../helpers/mcp-env.ts";

const SPAWNER = { spawn: true, max_depth: 2, allowed_images: ["@base"], allowed_secrets: ["API_KEY"] };

/** A family: parent A with children a1, a2 and grandchild a1x; parent B with child b1; loner L. */
async function family(env: ReturnType<typeof mcpEnv>) {
  env.services.secrets.set({ kind: "workspace" }, "API_KEY", "sk-live-value");
  const a = await env.top({ name: "pa", capabilities: SPAWNER });
  const b = await env.top({ name: "pb", capabilities: SPAWNER });
  const loner = await env.top({ name: "loner" });
  const a1 = ok(await a.guest.request("mcp.instance_spawn", { name: "a1", command: ["sh"], secrets: ["API_KEY"] }));
  const a2 = ok(await a.guest.request("mcp.instance_spawn", { name: "a2", command: ["sh"] }));
  const a1x = ok(await env.guest(a1.id).request("mcp.instance_spawn", { name: "a1x", command: ["sh"] }));
  const b1 = ok(await b.guest.request("mcp.instance_spawn", { name: "b1", command: ["sh"] }));
  return { a, b, loner, a1, a2, a1x, b1 };
}

describe("mcp.instance_list", () => {
  it("lists the caller's direct children only, with secret names but never values", async () => {
    await using env = mcpEnv();
    const f = await family(env);
    const list = ok(await f.a.guest.request("mcp.instance_list"));
    expect(list.instances.map((c: any) => c.handle).sort()).toEqual(["a1.pa", "a2.pa"]);
    expect(list.instances.find((c: any) => c.handle === "a1.pa")).toMatchObject({ id: f.a1.id, state: "running", secrets: ["API_KEY"], command: ["sh"] });
    expect(JSON.stringify(list)).not.toContain("sk-live-value");
    expect(ok(await f.b.guest.request("mcp.instance_list")).instances.map((c: any) => c.id)).toEqual([f.b1.id]);
    expect(ok(await env.guest(f.a1.id).request("mcp.instance_list")).instances.map((c: any) => c.id)).toEqual([f.a1x.id]);
    expect(ok(await f.loner.guest.request("mcp.instance_list")).instances).toEqual([]);
  });
});

describe("mcp.instance_stop", () => {
  it("answers not_found for someone else's child, a top-level instance, the caller's parent, itself, a grandchild and an unknown name alike, and stops none of them", async () => {
    await using env = mcpEnv();
    const f = await family(env);
    const unknown = refused(await f.a.guest.request("mcp.instance_stop", { instance: "no-such-instance" }));
    expect(unknown.code).toBe(McpBridgeErrorCode.notFound);
    expect(unknown.message).toBe('instance "no-such-instance" is not a child of this instance');
    const probes: [ReturnType<typeof env.guest>, string][] = [
      [f.a.guest, f.b1.id],
      [f.a.guest, "b1"],
      [f.a.guest, "loner"],
      [f.a.guest, "pb"],
      [f.a.guest, "pa"],
      [f.a.guest, "a1x"],
      [f.a.guest, "b1.pb"],
      [f.a.guest, "a1x.a1.pa"],
      [env.guest(f.a1.id), "pa"],
      [f.loner.guest, "a1"],
    ];
    for (const [guest, name] of probes) {
      for (const del of [false, true]) {
        const e = refused(await guest.request("mcp.instance_stop", { instance: name, delete: del }));
        expect({ code: e.code, message: e.message, data: e.data }).toEqual({
          code: unknown.code,
          message: `instance "${name}" is not a child of this instance`,
          data: unknown.data,
        });
      }
    }
    expect(env.services.instances.list().map((i) => i.state)).toEqual(Array(7).fill("running"));
  });

  it("stops its own child by its short name (and the child's children with it), keeping them for a later start", async () => {
    await using env = mcpEnv();
    const f = await family(env);
    const r = ok(await f.a.guest.request("mcp.instance_stop", { instance: "a1" }));
    expect(r).toEqual({ id: f.a1.id, handle: "a1.pa", deleted: false });
    expect(env.services.instances.row("a1.pa").state).toBe("stopped");
    expect(env.services.instances.row("a1x.a1.pa").state).toBe("stopped");
    expect(env.services.instances.row("a2.pa").state).toBe("running");
    expect(ok(await f.a.guest.request("mcp.instance_list")).instances.find((c: any) => c.id === f.a1.id).state).toBe("stopped");
    // The stopped child's VM is gone: its own guest can no longer ask anything.
    expect((await env.guest(f.a1.id).request("mcp.self_info")).result).toBeUndefined();
  });

  it("deletes its own child by id with delete: true, and the grandchild goes with it", async () => {
    await using env = mcpEnv();
    const f = await family(env);
    const r = ok(await f.a.guest.request("mcp.instance_stop", { instance: f.a1.id, delete: true }));
    expect(r).toEqual({ id: f.a1.id, handle: "a1.pa", deleted: true });
    expect(env.services.instances.find(f.a1.id)).toBeNull();
    expect(env.services.instances.find(f.a1x.id)).toBeNull();
    expect(ok(await f.a.guest.request("mcp.instance_list")).instances.map((c: any) => c.handle)).toEqual(["a2.pa"]);
    expect(ok(await f.a.guest.request("mcp.self_info")).children).toBe(1);
    // Gone means gone: a second stop is the same not_found as for any unknown name.
    expect(refused(await f.a.guest.request("mcp.instance_stop", { instance: f.a1.id })).code).toBe(McpBridgeErrorCode.notFound);
  });
});

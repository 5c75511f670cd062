/**
 * Regression: a parent deleted while its `instance_spawn` was under way left
 * the child behind, running, with a `parent_id` nobody had (it escaped the
 * delete cascade). The spawn awaits the image before creating the child, and
 * the delete collected the children only before the parent's VM was gone.
 * The same wait let a name taken meanwhile through, and `create` then
 * restarted and handed the guest that (someone else's) stopped instance; a
 * child's handle is now NAME.PARENT, so a user's name is never its to take.
 */
import { describe, expect, it } from "bun:test";
import { mcpEnv, ok } from "../../helpers/mcp-env.ts";

describe("a parent deleted during its own spawn", () => {
  it("leaves no orphan when the delete finished while the spawn fetched the image", async () => {
    await using env = mcpEnv();
    env.setResolveDelay(50);
    const top = await env.top({ capabilities: { spawn: true, allowed_images: ["busybox"] } });
    const answer = top.guest.request("mcp.instance_spawn", { name: "late", image: "busybox", command: ["sh"] });
    while (env.resolved.length === 0) await Bun.sleep(1);
    await env.services.instances.delete(top.id);
    await answer;
    await Bun.sleep(150);
    expect(env.services.instances.list().map((i) => i.handle)).toEqual([]);
  });

  it("leaves no orphan when the child was created while the parent's VM was still going down", async () => {
    await using env = mcpEnv();
    env.setResolveDelay(30);
    env.backend.exitDelayMs = 120;
    const top = await env.top({ capabilities: { spawn: true, allowed_images: ["busybox"] } });
    void top.guest.request("mcp.instance_spawn", { name: "late", image: "busybox", command: ["sh"] });
    while (env.resolved.length === 0) await Bun.sleep(1);
    await env.services.instances.delete(top.id);
    await Bun.sleep(150);
    expect(env.services.instances.list().map((i) => i.handle)).toEqual([]);
  });
});

describe("a name taken during a spawn", () => {
  it("never hands the guest the user's instance that took the name meanwhile: the child is NAME.PARENT", async () => {
    await using env = mcpEnv();
    env.setResolveDelay(50);
    const top = await env.top({ capabilities: { spawn: true, allowed_images: ["busybox"] } });
    const answer = top.guest.request("mcp.instance_spawn", { name: "late", image: "busybox", command: ["sh"] });
    while (env.resolved.length === 0) await Bun.sleep(1);
    const other = await env.top({ name: "late" });
    await env.services.instances.stop(other.id);
    const child = ok(await answer);
    expect(child.handle).toBe(`late.${top.id}`);
    expect(env.services.instances.row("late")).toMatchObject({ id: other.id, state: "stopped", spec: { parent_id: null } });
    expect(env.services.instances.children(top.id).map((c) => c.id)).toEqual([child.id]);
  });
});

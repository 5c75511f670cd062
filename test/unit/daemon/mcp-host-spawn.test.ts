/**
 * mcp-host as a guest sees it: `mcp.self_info` and `mcp.instance_spawn` sent
 * over a VM's control channel to the real instance service (SQLite registry,
 * fake VMs). Expected values are written out here from the documented policy
 * (capabilities.ts module notes), not read from the code under test.
 */
import { describe, expect, it } from "bun:test";
import { McpBridgeErrorCode } from "../../../src/api/schema/mcp.ts";
import { mcpEnv, ok, refused } from "../../helpers/mcp-env.ts";

const DENIED = McpBridgeErrorCode.denied;

describe("mcp.self_info", () => {
  it("describes the calling instance from what the host stored: id, handle, depth 0, no parent, granted capabilities over the defaults", async () => {
    await using env = mcpEnv();
    const top = await env.top({ name: "boss", image: "alpine:3.21", capabilities: { spawn: true, max_children: 2, allowed_images: ["busybox"] } });
    const info = ok(await top.guest.request("mcp.self_info"));
    expect(info).toEqual({
      id: top.id,
      handle: "boss",
      image: "alpine:3.21",
      parent_id: null,
      depth: 0,
      expose: [],
      children: 0,
      capabilities: { spawn: true, max_depth: 1, max_children: 2, allowed_images: ["busybox"], max_memory_mb: 512, max_vcpus: 1, allowed_secrets: [], max_exposed_ports: 4 },
      keepalive_until: null,
    });
  });

  it("answers each VM about itself only: two instances get their own ids", async () => {
    await using env = mcpEnv();
    const a = await env.top({ name: "a" });
    const b = await env.top({ name: "b" });
    expect(ok(await a.guest.request("mcp.self_info")).id).toBe(a.id);
    expect(ok(await b.guest.request("mcp.self_info")).id).toBe(b.id);
  });

  it("ignores anything the guest claims in the request (params must be empty)", async () => {
    await using env = mcpEnv();
    const a = await env.top();
    const other = await env.top({ name: "other" });
    const e = refused(await a.guest.request("mcp.self_info", { id: other.id }));
    expect(e.code).toBe(McpBridgeErrorCode.invalidParams);
  });
});

describe("mcp.instance_spawn", () => {
  it("creates and boots a child with parent_id, depth and capabilities narrowed to what it was given", async () => {
    await using env = mcpEnv();
    env.services.secrets.set({ kind: "workspace" }, "API_KEY", "sk-child-value");
    env.services.secrets.set({ kind: "workspace" }, "DB_URL", "postgres://not-for-the-child");
    const grant = { spawn: true, max_depth: 2, max_children: 3, allowed_images: ["busybox", "@base"], max_memory_mb: 1024, max_vcpus: 4, allowed_secrets: ["API_KEY", "DB_URL"], max_exposed_ports: 2 };
    const top = await env.top({ capabilities: grant });
    const child = ok(
      await top.guest.request("mcp.instance_spawn", { name: "worker", image: "busybox", command: ["httpd", "-f"], memory_mb: 256, vcpus: 2, secrets: ["API_KEY"], env: { MODE: "child" }, expose: [8080] }),
    );
    expect(child).toMatchObject({ handle: `worker.${top.id}`, state: "running", image: "busybox", command: ["httpd", "-f"], memory_mb: 256, vcpus: 2, secrets: ["API_KEY"] });
    expect(child.expose).toEqual([{ guest_port: 8080, public_port: null, url: `http://127.0.0.1:18099/worker.${top.id}/`, reachable: true }]);

    // The child is an ordinary instance of the daemon, registered under its parent.
    const row = env.services.instances.row(`worker.${top.id}`);
    expect(row.id).toBe(child.id);
    expect(row.spec.parent_id).toBe(top.id);
    expect(row.spec.depth).toBe(1);
    // Its command ran in its own VM, with the granted secret and nothing else of the host's.
    const run = env.guest(child.id).runs[0]!;
    expect(run.argv).toEqual(["httpd", "-f"]);
    expect(run.env.API_KEY).toBe("sk-child-value");
    expect(run.env.MODE).toBe("child");
    expect(run.env.DB_URL).toBeUndefined();

    const info = ok(await env.guest(child.id).request("mcp.self_info"));
    expect(info.parent_id).toBe(top.id);
    expect(info.depth).toBe(1);
    // depth 1 < max_depth 2: may spawn; memory/vCPUs shrink to its own allocation; secrets to those it holds.
    expect(info.capabilities).toEqual({ spawn: true, max_depth: 2, max_children: 3, allowed_images: ["busybox", "@base"], max_memory_mb: 256, max_vcpus: 2, allowed_secrets: ["API_KEY"], max_exposed_ports: 2 });
    expect(ok(await top.guest.request("mcp.self_info")).children).toBe(1);
  });

  it("gives a child the daemon's default memory and vCPUs when it asks for none, and runs it on the base rootfs when no image is named", async () => {
    await using env = mcpEnv();
    const top = await env.top({ capabilities: { spawn: true, allowed_images: ["@base"], max_memory_mb: 2048, max_vcpus: 2 } });
    const child = ok(await top.guest.request("mcp.instance_spawn", { command: ["true"] }));
    expect(child.image).toBeNull();
    expect(child.memory_mb).toBe(512);
    expect(child.vcpus).toBe(1);
    expect(env.backend.vms.get(child.id)!.spec.rootfs).toBeUndefined();
    expect(env.backend.vms.get(child.id)!.spec.memoryMb).toBe(512);
    // max_depth defaults to 1, so the child (depth 1) may not spawn.
    expect(ok(await env.guest(child.id).request("mcp.self_info")).capabilities).toMatchObject({ spawn: false, max_memory_mb: 512, max_vcpus: 1 });
  });

  it("lets a child spawn a grandchild within max_depth, and the grandchild at max_depth may not spawn", async () => {
    await using env = mcpEnv();
    const top = await env.top({ capabilities: { spawn: true, max_depth: 2, allowed_images: ["@base"] } });
    const child = ok(await top.guest.request("mcp.instance_spawn", { command: ["sh"] }));
    const grand = ok(await env.guest(child.id).request("mcp.instance_spawn", { command: ["sh"] }));
    const info = ok(await env.guest(grand.id).request("mcp.self_info"));
    expect(info).toMatchObject({ parent_id: child.id, depth: 2 });
    expect(info.capabilities.spawn).toBe(false);
    const e = refused(await env.guest(grand.id).request("mcp.instance_spawn", { command: ["sh"] }));
    expect(e.code).toBe(DENIED);
    expect(e.message).toContain("spawn is false");
    expect(env.services.instances.list()).toHaveLength(3);
  });
});

describe("mcp.instance_spawn refusals (nothing is created)", () => {
  it("refuses an instance without the spawn capability, with the host-grant hint, before looking at the image", async () => {
    await using env = mcpEnv();
    const top = await env.top();
    const e = refused(await top.guest.request("mcp.instance_spawn", { image: "busybox", command: ["sh"] }));
    expect(e.code).toBe(DENIED);
    expect(e.message).toBe("denied: this instance may not start child instances (capability spawn is false)");
    expect(e.data).toEqual({ code: "denied", hint: expect.stringContaining("a guest cannot change its own") });
    expect(env.services.instances.list()).toHaveLength(1);
    expect(env.resolved).toEqual([]);
  });

  it("refuses a child beyond max_depth", async () => {
    await using env = mcpEnv();
    const top = await env.top({ capabilities: { spawn: true, max_depth: 0, allowed_images: ["@base"] } });
    const e = refused(await top.guest.request("mcp.instance_spawn", { command: ["sh"] }));
    expect(e.code).toBe(DENIED);
    expect(e.message).toContain("depth 1, beyond max_depth 0");
    expect(env.services.instances.list()).toHaveLength(1);
  });

  it("refuses past max_children, counts a stopped child, and allows again once one is deleted", async () => {
    await using env = mcpEnv();
    const top = await env.top({ capabilities: { spawn: true, max_children: 1, allowed_images: ["@base"] } });
    const first = ok(await top.guest.request("mcp.instance_spawn", { command: ["sh"] }));
    const e = refused(await top.guest.request("mcp.instance_spawn", { command: ["sh"] }));
    expect(e.code).toBe(DENIED);
    expect(e.message).toContain("already has 1 child instance(s); max_children is 1");
    expect(e.data.hint).toContain("instance_stop with delete: true");

    ok(await top.guest.request("mcp.instance_stop", { instance: first.id }));
    expect(refused(await top.guest.request("mcp.instance_spawn", { command: ["sh"] })).code).toBe(DENIED);
    ok(await top.guest.request("mcp.instance_stop", { instance: first.id, delete: true }));
    ok(await top.guest.request("mcp.instance_spawn", { command: ["sh"] }));
    expect(env.services.instances.children(top.id)).toHaveLength(1);
  });

  it("lets only one of two concurrent spawns pass max_children 1, even while the image is being fetched", async () => {
    await using env = mcpEnv();
    env.setResolveDelay(30);
    const top = await env.top({ capabilities: { spawn: true, max_children: 1, allowed_images: ["busybox"] } });
    const answers = await Promise.all([
      top.guest.request("mcp.instance_spawn", { image: "busybox", command: ["sh"] }),
      top.guest.request("mcp.instance_spawn", { image: "busybox", command: ["sh"] }),
    ]);
    expect(answers.filter((a) => a.result !== undefined)).toHaveLength(1);
    const failed = answers.filter((a) => a.error !== undefined);
    expect(failed).toHaveLength(1);
    expect(failed[0]!.error!.message).toContain("max_children is 1");
    expect(env.services.instances.children(top.id)).toHaveLength(1);
  });

  it("refuses an image outside allowed_images, the base rootfs unless @base is listed, and a malformed reference", async () => {
    await using env = mcpEnv();
    const top = await env.top({ capabilities: { spawn: true, allowed_images: ["alpine"] } });
    const other = refused(await top.guest.request("mcp.instance_spawn", { image: "busybox", command: ["sh"] }));
    expect(other.code).toBe(DENIED);
    expect(other.message).toContain('image "busybox"');
    expect(other.message).toContain("not in allowed_images (alpine)");
    expect(other.data.hint).toContain("capabilities.allowed_images");
    const base = refused(await top.guest.request("mcp.instance_spawn", { command: ["sh"] }));
    expect(base.code).toBe(DENIED);
    expect(base.message).toContain("base rootfs (@base)");
    const bad = refused(await top.guest.request("mcp.instance_spawn", { image: "Not/A:Valid:Ref", command: ["sh"] }));
    expect(bad.code).toBe(DENIED);
    expect(bad.message).toContain('invalid image reference "Not/A:Valid:Ref"');
    expect(env.services.instances.list()).toHaveLength(1);
    expect(env.resolved).toEqual([]);
  });

  it("refuses memory or vCPUs over the cap, including the default memory when the cap is below it", async () => {
    await using env = mcpEnv();
    const top = await env.top({ capabilities: { spawn: true, allowed_images: ["@base"], max_memory_mb: 1024, max_vcpus: 2 } });
    const mem = refused(await top.guest.request("mcp.instance_spawn", { command: ["sh"], memory_mb: 1025 }));
    expect(mem.code).toBe(DENIED);
    expect(mem.message).toContain("memory_mb 1025 exceeds max_memory_mb 1024");
    expect(mem.data.hint).toBe("ask for at most 1024 MiB");
    const cpu = refused(await top.guest.request("mcp.instance_spawn", { command: ["sh"], vcpus: 3 }));
    expect(cpu.code).toBe(DENIED);
    expect(cpu.message).toContain("vcpus 3 exceeds max_vcpus 2");
    ok(await top.guest.request("mcp.instance_spawn", { command: ["sh"], memory_mb: 1024, vcpus: 2 }));

    const small = await env.top({ capabilities: { spawn: true, allowed_images: ["@base"], max_memory_mb: 256 } });
    expect(refused(await small.guest.request("mcp.instance_spawn", { command: ["sh"] })).message).toContain("memory_mb 512 exceeds max_memory_mb 256");
    expect(env.services.instances.list()).toHaveLength(3);
  });

  it("refuses a secret outside allowed_secrets without revealing values", async () => {
    await using env = mcpEnv();
    env.services.secrets.set({ kind: "workspace" }, "DB_URL", "postgres://secret-value");
    const top = await env.top({ capabilities: { spawn: true, allowed_images: ["@base"], allowed_secrets: ["API_KEY"] } });
    const e = refused(await top.guest.request("mcp.instance_spawn", { command: ["sh"], secrets: ["DB_URL"] }));
    expect(e.code).toBe(DENIED);
    expect(e.message).toContain('secret "DB_URL" is not in allowed_secrets (API_KEY)');
    expect(JSON.stringify(e)).not.toContain("secret-value");
    expect(env.services.instances.list()).toHaveLength(1);
  });

  it("never takes a user's name: a child named like a running or stopped user instance gets NAME.PARENT, the user's is left alone", async () => {
    await using env = mcpEnv();
    const top = await env.top({ capabilities: { spawn: true, allowed_images: ["@base"], max_children: 4 } });
    const live = await env.top({ name: "live" });
    const parked = await env.top({ name: "parked" });
    await env.services.instances.stop(parked.id);
    for (const name of ["live", "parked"]) {
      const child = ok(await top.guest.request("mcp.instance_spawn", { name, command: ["sh"] }));
      expect(child.handle).toBe(`${name}.${top.id}`);
    }
    // The stopped user instance of that name was not started again, nor adopted.
    expect(env.services.instances.row("parked")).toMatchObject({ id: parked.id, state: "stopped", spec: { parent_id: null } });
    expect(env.services.instances.row("live")).toMatchObject({ id: live.id, spec: { parent_id: null } });
    expect(env.services.instances.children(top.id).map((c) => c.handle).sort()).toEqual([`live.${top.id}`, `parked.${top.id}`]);
  });

  it("refuses a name its own running or stopped child already has, and leaves that child alone", async () => {
    await using env = mcpEnv();
    const top = await env.top({ capabilities: { spawn: true, allowed_images: ["@base"], max_children: 4 } });
    const kid = ok(await top.guest.request("mcp.instance_spawn", { name: "kid", command: ["sh"] }));
    for (const stopped of [false, true]) {
      if (stopped) await env.services.instances.stop(kid.id);
      const e = refused(await top.guest.request("mcp.instance_spawn", { name: "kid", command: ["sh"] }));
      expect(e.code).toBe(McpBridgeErrorCode.conflict);
      expect(e.message).toBe(`this instance already has a child named "kid" (kid.${top.id})`);
      expect(e.data).toEqual({ code: "conflict", hint: expect.stringContaining("choose another name") });
    }
    expect(env.services.instances.row(kid.id).state).toBe("stopped");
    expect(env.services.instances.children(top.id)).toHaveLength(1);
  });

  it("refuses malformed params at the channel (unknown field, memory below the minimum)", async () => {
    await using env = mcpEnv();
    const top = await env.top({ capabilities: { spawn: true, allowed_images: ["@base"] } });
    expect(refused(await top.guest.request("mcp.instance_spawn", { command: ["sh"], parent_id: "x" })).code).toBe(McpBridgeErrorCode.invalidParams);
    expect(refused(await top.guest.request("mcp.instance_spawn", { command: ["sh"], memory_mb: 64 })).code).toBe(McpBridgeErrorCode.invalidParams);
    expect(env.services.instances.list()).toHaveLength(1);
  });
});

describe("daemon errors as bridge errors", () => {
  it("maps a missing image (not_found) to notFound with the daemon's code and hint, creating nothing", async () => {
    await using env = mcpEnv();
    const top = await env.top({ capabilities: { spawn: true, allowed_images: ["*"] } });
    const e = refused(await top.guest.request("mcp.instance_spawn", { image: "ghcr.io/nobody/nothing:1", command: ["sh"] }));
    expect(e.code).toBe(McpBridgeErrorCode.notFound);
    expect(e.message).toBe("image ghcr.io/nobody/nothing:1 not found in its registry");
    expect(e.data).toEqual({ code: "not_found", hint: "check the name and tag" });
    expect(env.services.instances.list()).toHaveLength(1);
  });

  it("maps an allowed secret that the host has not set (not_found) to notFound", async () => {
    await using env = mcpEnv();
    const top = await env.top({ capabilities: { spawn: true, allowed_images: ["@base"], allowed_secrets: ["API_KEY"] } });
    const e = refused(await top.guest.request("mcp.instance_spawn", { command: ["sh"], secrets: ["API_KEY"] }));
    expect(e.code).toBe(McpBridgeErrorCode.notFound);
    expect(e.message).toContain("secret API_KEY not found");
    expect(e.data.code).toBe("not_found");
    expect(env.services.instances.list()).toHaveLength(1);
  });

  it("maps an invalid request of the daemon (a port exposed twice) to invalidParams", async () => {
    await using env = mcpEnv();
    const top = await env.top({ capabilities: { spawn: true, allowed_images: ["@base"] } });
    const e = refused(await top.guest.request("mcp.instance_spawn", { command: ["sh"], expose: [80, 80] }));
    expect(e.code).toBe(McpBridgeErrorCode.invalidParams);
    expect(e.data.code).toBe("invalid_request");
    expect(env.services.instances.list()).toHaveLength(1);
  });

  it("maps a child VM that fails to boot (backend_error) to an internal error naming the child", async () => {
    await using env = mcpEnv();
    const top = await env.top({ capabilities: { spawn: true, allowed_images: ["@base"], max_memory_mb: 4096 } });
    env.backend.failBoot = (spec) => spec.memoryMb === 4096;
    const e = refused(await top.guest.request("mcp.instance_spawn", { name: "big", command: ["sh"], memory_mb: 4096 }));
    expect(e.code).toBe(McpBridgeErrorCode.internal);
    expect(e.message).toContain(`instance big.${top.id} could not start`);
    expect(e.data).toEqual({ code: "backend_error", hint: `see 'aegis logs big.${top.id}'` });
    // The failed child stays (its logs explain the failure) and its parent can see and delete it.
    const list = ok(await top.guest.request("mcp.instance_list"));
    expect(list.instances.map((c: any) => [c.handle, c.state])).toEqual([[`big.${top.id}`, "failed"]]);
  });
});

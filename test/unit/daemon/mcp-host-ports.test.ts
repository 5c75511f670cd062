/**
 * mcp-host's `expose_port` / `unexpose_port` and keepalive leases as a guest
 * sees them, and what the idle policy of the real instance service makes of
 * them. Also requests whose instance is gone.
 */
import { describe, expect, it } from "bun:test";
import { McpBridgeErrorCode } from "../../../src/api/schema/mcp.ts";
import { mcpEnv, ok, refused, ROUTER_ORIGIN } from "../../helpers/mcp-env.ts";

describe("mcp.expose_port", () => {
  it("exposes a port of the running VM at once: stored, forwarded by the VM and served by the router at /<handle>/", async () => {
    await using env = mcpEnv();
    const top = await env.top({ name: "web" });
    const ep = ok(await top.guest.request("mcp.expose_port", { port: 8080 }));
    expect(ep).toEqual({ guest_port: 8080, public_port: null, url: `${ROUTER_ORIGIN}/web/`, reachable: true });
    expect(env.services.instances.row("web").spec.expose).toEqual([{ guest_port: 8080, public_port: null }]);
    const forwards = [...env.backend.vms.get(top.id)!.forwards];
    expect(forwards.map(([, guest]) => guest)).toEqual([8080]);
    expect(env.services.instances.hostPort(top.id, 8080)).toBe(forwards[0]![0]);
    // Again: the same endpoint, nothing added.
    expect(ok(await top.guest.request("mcp.expose_port", { port: 8080 }))).toEqual(ep);
    expect(env.services.instances.row("web").spec.expose).toHaveLength(1);
    expect(env.backend.vms.get(top.id)!.forwards.size).toBe(1);
    // A second port is forwarded but only the first is the router's.
    expect(ok(await top.guest.request("mcp.expose_port", { port: 9090 }))).toEqual({ guest_port: 9090, public_port: null, url: null, reachable: true });
    expect(ok(await top.guest.request("mcp.self_info")).expose.map((e: any) => e.guest_port)).toEqual([8080, 9090]);
  });

  it("refuses a port past max_exposed_ports, changing nothing, while re-exposing an exposed one still works", async () => {
    await using env = mcpEnv();
    const top = await env.top({ capabilities: { max_exposed_ports: 1 } });
    ok(await top.guest.request("mcp.expose_port", { port: 80 }));
    const e = refused(await top.guest.request("mcp.expose_port", { port: 81 }));
    expect(e.code).toBe(McpBridgeErrorCode.denied);
    expect(e.message).toBe("denied: cannot expose port 81: this instance already exposes 1 port(s); max_exposed_ports is 1");
    expect(e.data).toEqual({ code: "denied", hint: "unexpose a port first (unexpose_port)" });
    expect(env.services.instances.row(top.id).spec.expose).toEqual([{ guest_port: 80, public_port: null }]);
    expect([...env.backend.vms.get(top.id)!.forwards.values()]).toEqual([80]);
    ok(await top.guest.request("mcp.expose_port", { port: 80 }));

    const none = await env.top({ capabilities: { max_exposed_ports: 0 } });
    expect(refused(await none.guest.request("mcp.expose_port", { port: 80 })).code).toBe(McpBridgeErrorCode.denied);
    expect(env.services.instances.row(none.id).spec.expose).toEqual([]);
  });

  it("says reachable: false on a backend that cannot add forwards to a running VM, and true after the next boot", async () => {
    await using env = mcpEnv();
    env.backend.hotplugPorts = false;
    const top = await env.top({ name: "cold" });
    expect(ok(await top.guest.request("mcp.expose_port", { port: 3000 })).reachable).toBe(false);
    await env.services.instances.stop(top.id);
    await env.services.instances.start(top.id);
    expect(ok(await env.guest(top.id).request("mcp.self_info")).expose).toEqual([{ guest_port: 3000, public_port: null, url: `${ROUTER_ORIGIN}/cold/`, reachable: true }]);
  });

  it("refuses a port outside 1-65535 at the channel", async () => {
    await using env = mcpEnv();
    const top = await env.top();
    for (const port of [0, 65536, 80.5]) expect(refused(await top.guest.request("mcp.expose_port", { port })).code).toBe(McpBridgeErrorCode.invalidParams);
    expect(env.services.instances.row(top.id).spec.expose).toEqual([]);
  });
});

describe("mcp.unexpose_port", () => {
  it("unexposes a port the guest exposed: removed from the spec and from the VM's forwards", async () => {
    await using env = mcpEnv();
    const top = await env.top();
    ok(await top.guest.request("mcp.expose_port", { port: 8080 }));
    expect(ok(await top.guest.request("mcp.unexpose_port", { port: 8080 }))).toEqual({ ok: true });
    expect(env.services.instances.row(top.id).spec.expose).toEqual([]);
    expect(env.backend.vms.get(top.id)!.forwards.size).toBe(0);
    const e = refused(await top.guest.request("mcp.unexpose_port", { port: 8080 }));
    expect(e.code).toBe(McpBridgeErrorCode.notFound);
    expect(e.message).toBe("port 8080 is not exposed");
  });

  it("refuses to unexpose a port the host published, which stays published", async () => {
    await using env = mcpEnv();
    const top = await env.top({ expose: ["18081:80", "8000"] });
    expect(ok(await top.guest.request("mcp.self_info")).expose).toEqual([
      { guest_port: 80, public_port: 18081, url: "tcp://127.0.0.1:18081", reachable: true },
      { guest_port: 8000, public_port: null, url: `${ROUTER_ORIGIN}/${top.handle}/`, reachable: true },
    ]);
    const e = refused(await top.guest.request("mcp.unexpose_port", { port: 80 }));
    expect(e.code).toBe(McpBridgeErrorCode.denied);
    expect(e.message).toContain("published on the host");
    expect(e.data.hint).toBe("the host owner changes published ports");
    expect(env.services.instances.row(top.id).spec.expose).toEqual([
      { guest_port: 80, public_port: 18081 },
      { guest_port: 8000, public_port: null },
    ]);
    expect([...env.backend.vms.get(top.id)!.forwards.values()].sort()).toEqual([80, 8000]);
  });
});

describe("mcp.keepalive_acquire / mcp.keepalive_release", () => {
  it("holds the idle policy off until the deadline it reports, and release lets it pause the instance", async () => {
    await using env = mcpEnv();
    const top = await env.top({ pause_after_s: 1, stop_after_s: 0 });
    const before = Date.now();
    const { until } = ok(await top.guest.request("mcp.keepalive_acquire", { seconds: 600 }));
    const untilMs = Date.parse(until);
    expect(untilMs).toBeGreaterThanOrEqual(before + 600_000);
    expect(untilMs).toBeLessThanOrEqual(Date.now() + 600_000);
    expect(ok(await top.guest.request("mcp.self_info")).keepalive_until).toBe(until);
    const act = env.services.instances.activity;
    expect(act.busy(top.id, Date.now() + 5_000)).toBe(true);
    await env.services.instances.idleTick(Date.now() + 5_000);
    expect(env.services.instances.row(top.id).state).toBe("running");

    expect(ok(await top.guest.request("mcp.keepalive_release"))).toEqual({ ok: true });
    expect(act.busy(top.id)).toBe(false);
    expect(ok(await top.guest.request("mcp.self_info")).keepalive_until).toBeNull();
    await env.services.instances.idleTick(Date.now() + 5_000);
    expect(env.services.instances.row(top.id).state).toBe("paused");
  });

  it("stops holding once the deadline passes", async () => {
    await using env = mcpEnv();
    const top = await env.top({ pause_after_s: 1, stop_after_s: 0 });
    const { until } = ok(await top.guest.request("mcp.keepalive_acquire", { seconds: 1 }));
    await env.services.instances.idleTick(Date.parse(until) + 5_000);
    expect(env.services.instances.row(top.id).state).toBe("paused");
    expect(ok(await top.guest.request("mcp.self_info")).keepalive_until).toBeNull();
  });

  it("replaces the deadline on a second acquire, releases idempotently, and holds only the caller", async () => {
    await using env = mcpEnv();
    const top = await env.top({ capabilities: { spawn: true, allowed_images: ["@base"] } });
    const child = ok(await top.guest.request("mcp.instance_spawn", { command: ["sh"] }));
    ok(await top.guest.request("mcp.keepalive_acquire", { seconds: 3600 }));
    const { until } = ok(await top.guest.request("mcp.keepalive_acquire", { seconds: 60 }));
    const act = env.services.instances.activity;
    expect(act.busy(top.id, Date.parse(until) + 1)).toBe(false);
    expect(act.busy(child.id)).toBe(false);
    ok(await env.guest(child.id).request("mcp.keepalive_acquire", { seconds: 30 }));
    ok(await top.guest.request("mcp.keepalive_release"));
    ok(await top.guest.request("mcp.keepalive_release"));
    expect(act.busy(top.id)).toBe(false);
    expect(act.busy(child.id)).toBe(true);
  });

  it("refuses a lease of 0 s or over an hour", async () => {
    await using env = mcpEnv();
    const top = await env.top();
    for (const seconds of [0, 3601, 1.5, -1]) expect(refused(await top.guest.request("mcp.keepalive_acquire", { seconds })).code).toBe(McpBridgeErrorCode.invalidParams);
    expect(env.services.instances.activity.busy(top.id)).toBe(false);
  });

  it("counts every request as activity for the idle clock", async () => {
    await using env = mcpEnv();
    const top = await env.top();
    const at = Date.now() + 60_000;
    const idleBefore = env.services.instances.activity.idleSeconds(top.id, at);
    await Bun.sleep(5);
    ok(await top.guest.request("mcp.instance_list"));
    expect(env.services.instances.activity.idleSeconds(top.id, at)).toBeLessThan(idleBefore);
  });
});

describe("requests whose instance is gone", () => {
  it("answers not_found on a channel that outlived its instance, and creates or holds nothing for it", async () => {
    await using env = mcpEnv();
    const top = await env.top({ name: "ghost", capabilities: { spawn: true, allowed_images: ["@base"] } });
    await env.services.instances.delete(top.id);
    // A VM channel still attached to the deleted instance (a request already on its way when it went).
    const vm = await env.backend.boot({ id: top.id, runDir: `${env.home}/stale`, memoryMb: 512, vcpus: 1, ports: [], hostname: top.id });
    try {
      env.services.mcp.attach(top.id, vm);
      const guest = env.backend.vms.get(top.id)!.guest;
      for (const [method, params] of [
        ["mcp.self_info", {}],
        ["mcp.instance_spawn", { command: ["sh"] }],
        ["mcp.expose_port", { port: 80 }],
        ["mcp.unexpose_port", { port: 80 }],
        ["mcp.keepalive_acquire", { seconds: 60 }],
      ] as const) {
        const e = refused(await guest.request(method, params));
        expect([method, e.code, e.message]).toEqual([method, McpBridgeErrorCode.notFound, `this instance (${top.id}) no longer exists`]);
      }
      expect(env.services.instances.list()).toEqual([]);
      expect(env.services.instances.activity.keepaliveUntil(top.id)).toBeNull();
    } finally {
      vm.kill();
    }
  });
});

/**
 * aegis-mcp-guest end to end under QEMU (issue 8): an MCP client inside a
 * parent instance (base rootfs, `--allow-spawn --max-children 1
 * --allow-image @base`) spawns a child running busybox httpd with port 8080
 * exposed, the host reaches it through the router, the child is listed,
 * shows its parent in `aegis instance info` and is stopped; a second spawn
 * (max_children), a disallowed image and stopping an instance that is not
 * the caller's child are refused and change nothing; a keepalive lease and
 * expose/unexpose of the parent's own port; deleting the parent deletes the
 * child.
 *
 * The MCP client is one long-lived `aegis-mcp-guest` inside the parent,
 * driven through `aegis exec -i` (stdin streamed over the session): the
 * test writes JSON-RPC lines to it and matches the answers by id, so each
 * tool call is a round trip instead of a new server process in a TCG guest.
 *
 * QEMU launches: "other" (exits at once), the parent, the child; never more
 * than two at once.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { aegisBin, TestHome } from "../helpers/aegis.ts";

const T = 420_000; // four VM boots (parent, other, child, the user's kid) under TCG on a shared machine
let home: TestHome;

beforeAll(async () => {
  home = new TestHome();
  await home.ok(["up"]);
}, T);
afterAll(async () => {
  session?.proc.kill();
  await home[Symbol.asyncDispose]();
});

type ToolAnswer = { isError?: boolean; content: { type: string; text: string }[]; structuredContent?: any };

/** One MCP session with the parent's server, started at the first call. */
let session: { proc: Bun.Subprocess<"pipe", "pipe", "pipe">; waiting: Map<number, (m: { result?: ToolAnswer; error?: unknown }) => void>; next: number } | null = null;

function send(msg: unknown): void {
  session!.proc.stdin.write(`${JSON.stringify(msg)}\n`);
  session!.proc.stdin.flush();
}

async function request(method: string, params: unknown): Promise<{ result?: ToolAnswer; error?: unknown }> {
  const id = session!.next++;
  const answer = new Promise<{ result?: ToolAnswer; error?: unknown }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer to ${method} within 120 s`)), 120_000);
    session!.waiting.set(id, (m) => {
      clearTimeout(timer);
      resolve(m);
    });
  });
  send({ jsonrpc: "2.0", id, method, params });
  return answer;
}

async function openSession(): Promise<void> {
  const proc = Bun.spawn([aegisBin(), "exec", "-i", "parent", "--", "/usr/bin/aegis-mcp-guest"], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", AEGIS_HOME: home.dir },
    stdin: "pipe",
    stdout: "pipe",
    stderr: "pipe",
  });
  session = { proc, waiting: new Map(), next: 1 };
  void (async () => {
    let buf = "";
    for await (const chunk of proc.stdout) {
      buf += new TextDecoder().decode(chunk);
      for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line) continue;
        const m = JSON.parse(line) as { id?: number; result?: ToolAnswer; error?: unknown };
        if (typeof m.id === "number") session?.waiting.get(m.id)?.(m);
      }
    }
  })();
  const init = await request("initialize", { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "e2e", version: "1" } });
  if (!init.result) throw new Error(`initialize failed: ${JSON.stringify(init.error)}`);
  send({ jsonrpc: "2.0", method: "notifications/initialized" });
}

async function closeSession(): Promise<void> {
  if (!session) return;
  session.proc.stdin.end();
  await session.proc.exited;
  session = null;
}

/** Call one tool of the parent's MCP server, from inside the parent. */
async function mcp(tool: string, args: Record<string, unknown> = {}): Promise<ToolAnswer> {
  if (!session) await openSession();
  const answer = await request("tools/call", { name: tool, arguments: args });
  if (!answer.result) throw new Error(`no result for tools/call ${tool}: ${JSON.stringify(answer.error)}`);
  return answer.result;
}

async function list(): Promise<{ handle: string; state: string; parent_id: string | null }[]> {
  return JSON.parse((await home.ok(["instance", "list", "--json"])).stdout);
}

async function waitState(name: string, want: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let now = "";
  while (Date.now() < deadline) {
    now = JSON.parse((await home.ok(["instance", "info", name, "--json"])).stdout).state;
    if (now === want) return;
    await Bun.sleep(250);
  }
  throw new Error(`instance ${name} did not reach ${want} (now ${now})`);
}

describe("aegis-mcp-guest in a parent instance", () => {
  it("spawns a child served through the router, refuses what its capabilities do not allow, and the child goes with its parent", async () => {
    // A top-level instance that is not the parent's child (its command ends at once, so its VM is gone again).
    await home.ok(["instance", "start", "--name", "other", "--pause-after", "0", "--", "true"]);
    await waitState("other", "stopped");
    await home.ok(["instance", "start", "--name", "parent", "--pause-after", "0", "--allow-spawn", "--max-children", "1", "--allow-image", "@base", "--", "sleep", "100000"]);
    const parentInfo = JSON.parse((await home.ok(["instance", "info", "parent", "--json"])).stdout);
    expect(parentInfo.capabilities).toMatchObject({ spawn: true, max_children: 1, allowed_images: ["@base"] });

    const self = await mcp("self_info");
    expect(self.isError).toBeUndefined();
    expect(self.structuredContent).toMatchObject({ id: parentInfo.id, handle: "parent", parent_id: null, depth: 0, children: 0 });

    // A disallowed image is refused before anything is pulled or created.
    const alpine = await mcp("instance_spawn", { image: "alpine", command: ["true"] });
    expect(alpine.isError).toBe(true);
    expect(alpine.content[0]!.text).toContain("is not in allowed_images (@base)");
    expect((await list()).map((i) => i.handle).sort()).toEqual(["other", "parent"]);

    const spawned = await mcp("instance_spawn", {
      name: "kid",
      command: ["sh", "-c", "mkdir -p /www; echo child > /www/index.html; exec httpd -f -p 8080 -h /www"],
      expose: [8080],
    });
    expect(spawned.isError).toBeUndefined();
    // The child lives in its parent's namespace: kid.parent, reached by path prefix and by NAME.localhost.
    expect(spawned.structuredContent).toMatchObject({ handle: "kid.parent", state: "running", image: null });
    const url: string = spawned.structuredContent.expose[0].url;
    const status = JSON.parse((await home.ok(["status", "--json"])).stdout);
    expect(url).toBe(`${status.router_url}/kid.parent/`);
    const res = await fetch(`${url}index.html`, { signal: AbortSignal.timeout(60_000) });
    expect([res.status, await res.text()]).toEqual([200, "child\n"]);
    expect(res.headers.get("content-security-policy")).toStartWith("sandbox ");
    const byHost = await fetch(`${status.router_url}/index.html`, { headers: { host: `kid.parent.localhost:${new URL(status.router_url).port}` } });
    expect([byHost.status, await byHost.text(), byHost.headers.get("content-security-policy")]).toEqual([200, "child\n", null]);

    // Name squatting: the guest's child named "kid" is not the user's "kid". The user's start makes a new
    // instance with the user's flags instead of restarting the guest's child.
    await home.ok(["instance", "start", "--name", "kid", "--pause-after", "0", "--", "true"]);
    const mine = JSON.parse((await home.ok(["instance", "info", "kid", "--json"])).stdout);
    expect([mine.parent_id, mine.command]).toEqual([null, ["true"]]);
    await waitState("kid", "stopped");

    const children = await mcp("instance_list");
    expect(children.structuredContent.instances.map((c: { handle: string }) => c.handle)).toEqual(["kid.parent"]);
    expect((await home.ok(["instance", "info", "kid.parent"])).stdout).toContain(`Parent:      ${parentInfo.id}\n`);

    // max_children 1: a second child is refused and nothing is created.
    const second = await mcp("instance_spawn", { name: "kid2", command: ["sleep", "1000"] });
    expect(second.isError).toBe(true);
    expect(second.content[0]!.text).toContain("max_children is 1");
    // Another top-level instance is not the parent's to stop.
    const foreign = await mcp("instance_stop", { instance: "other" });
    expect(foreign.isError).toBe(true);
    expect(foreign.content[0]!.text).toContain('instance "other" is not a child of this instance');
    expect((await list()).map((i) => i.handle).sort()).toEqual(["kid", "kid.parent", "other", "parent"]);
    // Inside the parent, "kid" is its own child (the short name), never the user's "kid".
    const stopped = await mcp("instance_stop", { instance: "kid" });
    expect(stopped.structuredContent).toMatchObject({ handle: "kid.parent", deleted: false });
    await waitState("kid.parent", "stopped");
    expect(JSON.parse((await home.ok(["instance", "info", "kid", "--json"])).stdout).id).toBe(mine.id);

    // Keepalive: a bounded lease, visible in self_info, released again.
    const lease = await mcp("keepalive_acquire", { seconds: 60 });
    const until = Date.parse(lease.structuredContent.until);
    expect(until - Date.now()).toBeGreaterThan(30_000);
    expect((await mcp("self_info")).structuredContent.keepalive_until).toBe(lease.structuredContent.until);
    expect((await mcp("keepalive_release")).structuredContent).toEqual({ ok: true });
    expect((await mcp("self_info")).structuredContent.keepalive_until).toBeNull();

    // expose_port on the running parent forwards the port at once (QEMU hostfwd_add); the router serves it.
    await home.ok(["exec", "parent", "--", "sh", "-c", "mkdir -p /w9 && echo nine > /w9/index.html && httpd -p 9000 -h /w9"]);
    const exposed = await mcp("expose_port", { port: 9000 });
    expect(exposed.structuredContent).toEqual({ guest_port: 9000, public_port: null, url: `${status.router_url}/parent/`, reachable: true });
    const [forward] = JSON.parse((await home.ok(["instance", "info", "parent", "--json"])).stdout).expose;
    expect(forward).toMatchObject({ guest_port: 9000, public_port: null });
    expect(forward.host_port).toBeGreaterThan(0);
    expect(await (await fetch(`${status.router_url}/parent/index.html`)).text()).toBe("nine\n");
    expect((await mcp("unexpose_port", { port: 9000 })).structuredContent).toEqual({ ok: true });
    expect(JSON.parse((await home.ok(["instance", "info", "parent", "--json"])).stdout).expose).toEqual([]);
    const again = await mcp("unexpose_port", { port: 9000 });
    expect([again.isError, again.content[0]!.text]).toEqual([true, "port 9000 is not exposed\nhint: self_info lists the exposed ports"]);

    await closeSession();
    await home.ok(["instance", "delete", "parent"]);
    expect((await list()).map((i) => i.handle).sort()).toEqual(["kid", "other"]);
    expect((await home.ok(["instance", "list"])).stdout).not.toContain("kid.parent");
    await home.ok(["instance", "delete", "kid"]);
    await home.ok(["instance", "delete", "other"]);
  }, T);
});

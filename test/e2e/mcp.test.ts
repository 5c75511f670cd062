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
 * The MCP client is `aegis-mcp-guest` itself fed by a shell script inside
 * the parent (exec has no stdin): the script writes `initialize`,
 * `notifications/initialized` and one `tools/call` into a FIFO, waits for
 * the call's answer, then closes the FIFO. One call per exec keeps the
 * order of the calls deterministic.
 *
 * QEMU launches: "other" (exits at once), the parent, the child; never more
 * than two at once.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { TestHome } from "../helpers/aegis.ts";

const T = 420_000; // four VM boots (parent, other, child, the user's kid) under TCG on a shared machine
let home: TestHome;

beforeAll(async () => {
  home = new TestHome();
  await home.ok(["up"]);
}, T);
afterAll(async () => {
  await home[Symbol.asyncDispose]();
});

type ToolAnswer = { isError?: boolean; content: { type: string; text: string }[]; structuredContent?: any };

/** The script run inside the parent: one MCP session with one tool call, printing the server's stdout. */
const CLIENT = [
  "f=/tmp/mcp.$$",
  "mkfifo $f.in",
  "/usr/bin/aegis-mcp-guest < $f.in > $f.out 2> $f.err & pid=$!",
  "exec 3> $f.in",
  'printf "%s\\n" "$L1" "$L2" "$L3" >&3',
  "n=0",
  `while [ "$(grep -c '"id":2[,}]' $f.out)" -lt 1 ] && [ $n -lt 1500 ]; do sleep 0.2; n=$((n+1)); done`,
  "exec 3>&-",
  "wait $pid",
  "cat $f.out",
  "cat $f.err >&2",
].join("\n");

/** Call one tool of the parent's MCP server, from inside the parent. */
async function mcp(tool: string, args: Record<string, unknown> = {}): Promise<ToolAnswer> {
  const init = { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "e2e", version: "1" } } };
  const initialized = { jsonrpc: "2.0", method: "notifications/initialized" };
  const call = { jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: tool, arguments: args } };
  const r = await home.ok(["exec", "parent", "--env", `L1=${JSON.stringify(init)}`, "--env", `L2=${JSON.stringify(initialized)}`, "--env", `L3=${JSON.stringify(call)}`, "--", "sh", "-c", CLIENT]);
  const answer = r.stdout
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as { id?: number; result?: ToolAnswer; error?: unknown })
    .find((m) => m.id === 2);
  if (!answer?.result) throw new Error(`no answer to tools/call ${tool}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
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

    await home.ok(["instance", "delete", "parent"]);
    expect((await list()).map((i) => i.handle).sort()).toEqual(["kid", "other"]);
    expect((await home.ok(["instance", "list"])).stdout).not.toContain("kid.parent");
    await home.ok(["instance", "delete", "kid"]);
    await home.ok(["instance", "delete", "other"]);
  }, T);
});

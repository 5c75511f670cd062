/**
 * The host MCP server (`aegis mcp`) as a process against a real aegisd, driven
 * by the MCP SDK's stdio client and by the MCP Inspector's CLI (a client we did
 * not write). Tools that need no VM run here; VM-booting ones are in
 * test/e2e/host-mcp.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { aegisBin, repoRoot, TestHome } from "../helpers/aegis.ts";
import { connectHostMcp, type HostMcp, hostMcpEnv, textOf } from "../helpers/host-mcp.ts";

const TOOLS = [
  "run",
  "instance_start",
  "instance_list",
  "instance_info",
  "instance_stop",
  "instance_delete",
  "instance_pause",
  "instance_resume",
  "exec",
  "logs",
  "file_read",
  "file_write",
  "file_list",
  "expose",
  "unexpose",
  "image_pull",
  "image_list",
  "secret_list",
  "tether_send",
  "tether_read",
];

describe("aegis mcp over stdio (SDK client)", () => {
  let home: TestHome;
  let mcp: HostMcp;
  beforeAll(async () => {
    home = new TestHome();
    // No daemon yet: the server must start it.
    mcp = await connectHostMcp(home);
  }, 60_000);
  afterAll(async () => {
    await mcp?.close();
    await home?.[Symbol.asyncDispose]();
  });

  it("starts aegisd when it is not running and says so on stderr only", async () => {
    expect(existsSync(join(home.dir, "data", "aegisd.pid"))).toBe(true);
    expect((await home.run(["status"])).code).toBe(0);
    expect(mcp.stderr()).toContain("aegisd started (pid");
  });

  it("introduces itself as aegis with tools and subscribable resources", () => {
    expect(mcp.client.getServerVersion()).toMatchObject({ name: "aegis", version: expect.any(String) });
    const caps = mcp.client.getServerCapabilities();
    expect(caps?.tools).toBeDefined();
    expect(caps?.resources).toMatchObject({ subscribe: true });
    expect(mcp.client.getInstructions()).toContain("aegis secret set");
  });

  it("lists the twenty tools, each with a description and a strict JSON schema", async () => {
    const { tools } = await mcp.client.listTools();
    expect(tools.map((t) => t.name)).toEqual(TOOLS);
    for (const t of tools) {
      expect({ name: t.name, described: (t.description ?? "").length > 60 }).toEqual({ name: t.name, described: true });
      expect({ name: t.name, type: t.inputSchema.type, additionalProperties: t.inputSchema.additionalProperties }).toEqual({ name: t.name, type: "object", additionalProperties: false });
    }
    const schema = Object.fromEntries(tools.map((t) => [t.name, t.inputSchema]));
    expect(schema.run!.required).toEqual(["command"]);
    expect(schema.run!.properties).toMatchObject({ command: { type: "array", minItems: 1 }, timeout_s: { type: "integer", maximum: 3600 }, secrets: { type: "array" } });
    expect(schema.exec!.required).toEqual(["instance", "command"]);
    expect(schema.file_write!.required).toEqual(["instance", "path", "content"]);
    expect(schema.file_write!.properties).toMatchObject({ encoding: { enum: ["text", "base64"] } });
    expect(schema.tether_read!.properties).toMatchObject({ wait_s: { maximum: 30 } });
    // Size limits are stated where the model reads them.
    expect(tools.find((t) => t.name === "file_read")!.description).toContain("1 MiB");
    expect(tools.find((t) => t.name === "exec")!.description).toContain("256 KiB");
    expect(tools.find((t) => t.name === "exec")!.description).toContain("[truncated: N more bytes]");
    // No tool takes a secret value.
    expect(JSON.stringify(tools.map((t) => t.inputSchema))).not.toMatch(/"(value|secret_value)"/);
    const annotations = Object.fromEntries(tools.map((t) => [t.name, t.annotations]));
    expect(annotations.instance_list).toMatchObject({ readOnlyHint: true });
    expect(annotations.instance_delete).toMatchObject({ destructiveHint: true });
  });

  it("instance_list and image_list report the empty store", async () => {
    const list = await mcp.call("instance_list");
    expect(list.isError ?? false).toBe(false);
    expect(list.structuredContent).toEqual({ instances: [] });
    const images = await mcp.call("image_list");
    expect(images.structuredContent).toEqual({ images: [] });
  });

  it("secret_list returns names and never values", async () => {
    await home.ok(["secret", "set", "API_TOKEN", "tok-3f9a-never-shown"]);
    const r = await mcp.call("secret_list");
    expect(r.isError ?? false).toBe(false);
    expect(r.structuredContent).toMatchObject({ scope: "workspace", secrets: [{ name: "API_TOKEN", created_at: expect.any(String), updated_at: expect.any(String) }] });
    expect(JSON.stringify(r)).not.toContain("tok-3f9a-never-shown");
  });

  it("reports an unknown instance as a tool error with the daemon's message and hint", async () => {
    for (const [tool, args] of [
      ["instance_info", { instance: "nope" }],
      ["instance_stop", { instance: "nope" }],
      ["instance_delete", { instance: "nope" }],
      ["exec", { instance: "nope", command: ["true"] }],
      ["logs", { instance: "nope" }],
      ["expose", { instance: "nope", port: 8080 }],
      ["tether_send", { instance: "nope", text: "hi" }],
      ["tether_read", { instance: "nope", wait_s: 0 }],
    ] as const) {
      const r = await mcp.call(tool, args);
      expect({ tool, isError: r.isError, text: textOf(r) }).toEqual({ tool, isError: true, text: "instance \"nope\" not found\nhint: list instances with 'aegis instance list'" });
    }
  });

  it("refuses bad arguments before anything reaches the daemon", async () => {
    const cases: [string, Record<string, unknown>, RegExp][] = [
      ["instance_info", {}, /instance/],
      ["run", { command: [] }, /command/],
      ["run", { command: ["true"], timeout_s: 99999 }, /timeout_s/],
      ["exec", { instance: "a", command: ["true"], shell: true }, /shell|unrecognized/i],
      ["file_read", { instance: "a", path: "etc/passwd" }, /absolute path/],
      ["file_write", { instance: "a", path: "/x", content: "x", mode: "999" }, /octal/],
      ["run", { command: ["env"], env: { "BAD-NAME": "1" } }, /env\.BAD-NAME/],
      ["instance_start", { name: "Bad_Name" }, /lowercase/],
      ["tether_read", { instance: "a", wait_s: 60 }, /wait_s/],
    ];
    for (const [tool, args, pattern] of cases) {
      const r = await mcp.call(tool, args);
      expect({ tool, isError: r.isError }).toEqual({ tool, isError: true });
      expect(textOf(r)).toMatch(pattern);
    }
    // Nothing was created by any of them.
    expect((await mcp.call("instance_list")).structuredContent).toEqual({ instances: [] });
  });

  it("refuses a file_write over 1 MiB and base64 that is not base64, naming the limit", async () => {
    const big = await mcp.call("file_write", { instance: "a", path: "/big", content: "x".repeat(1024 * 1024 + 1) });
    expect(big.isError).toBe(true);
    expect(textOf(big)).toContain("content is 1048577 bytes; file_write takes at most 1048576 bytes (1 MiB)");
    const bad = await mcp.call("file_write", { instance: "a", path: "/b", content: "not base64!", encoding: "base64" });
    expect(textOf(bad)).toContain("content is not valid base64");
  });

  it("lists the resource templates, and refuses a subscription to an unknown instance", async () => {
    const { resourceTemplates } = await mcp.client.listResourceTemplates();
    expect(resourceTemplates.map((t) => t.uriTemplate).sort()).toEqual(["aegis://instances/{name}/logs", "aegis://instances/{name}/tether"]);
    expect((await mcp.client.listResources()).resources).toEqual([]);
    await expect(mcp.client.subscribeResource({ uri: "aegis://instances/nope/logs" })).rejects.toThrow('instance "nope" not found');
    await expect(mcp.client.subscribeResource({ uri: "aegis://elsewhere" })).rejects.toThrow("aegis://instances/NAME/logs");
  });

  it("restarts aegisd when it went away between calls", async () => {
    await home.ok(["down"]);
    const r = await mcp.call("instance_list");
    expect(r.isError ?? false).toBe(false);
    expect(r.structuredContent).toEqual({ instances: [] });
    expect((await home.run(["status"])).code).toBe(0);
  });

});

describe("aegis mcp stdout", () => {
  it("carries only JSON-RPC messages, even while it starts aegisd", async () => {
    await using home = new TestHome();
    const init = { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "0" } } };
    const calls = [init, { jsonrpc: "2.0", method: "notifications/initialized" }, { jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "instance_list", arguments: {} } }];
    const proc = Bun.spawn([aegisBin(), "mcp"], { env: hostMcpEnv(home), stdin: "pipe", stdout: "pipe", stderr: "pipe" });
    for (const c of calls) proc.stdin.write(`${JSON.stringify(c)}\n`);
    await proc.stdin.flush();
    const reader = proc.stdout.getReader();
    let out = "";
    while ((out.match(/\n/g) ?? []).length < 2) {
      const { value, done } = await reader.read();
      if (done) break;
      out += new TextDecoder().decode(value);
    }
    await proc.stdin.end();
    for (let r = await reader.read(); !r.done; r = await reader.read()) out += new TextDecoder().decode(r.value);
    const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
    const lines = out.trimEnd().split("\n");
    expect(lines.map((l) => (JSON.parse(l) as { jsonrpc: string; id: number }).id)).toEqual([1, 2]);
    expect(lines.every((l) => JSON.parse(l).jsonrpc === "2.0")).toBe(true);
    expect(JSON.parse(lines[1]!).result.structuredContent).toEqual({ instances: [] });
    expect(stderr).toContain("aegis mcp: aegisd started");
    expect(code).toBe(0);
  }, 30_000);
});

describe("aegis mcp entry points", () => {
  it("serves under the aegis-mcp link and as aegis __mcp", async () => {
    await using home = new TestHome();
    for (const [command, args] of [
      [join(repoRoot, "bin", "aegis-mcp"), []],
      [aegisBin(), ["__mcp"]],
      [aegisBin(), ["mcp", "serve"]],
    ] as const) {
      const mcp = await connectHostMcp(home, { command, args: [...args] });
      try {
        expect(mcp.client.getServerVersion()?.name).toBe("aegis");
        expect((await mcp.client.listTools()).tools).toHaveLength(TOOLS.length);
      } finally {
        await mcp.close();
      }
    }
  }, 30_000);

  it("refuses unknown flags and arguments with exit 2", async () => {
    await using home = new TestHome();
    const flag = await home.run(["mcp", "--stdio"]);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain("unknown flag --stdio");
    const extra = await home.run(["mcp", "serve", "now"]);
    expect(extra.code).toBe(2);
    const role = Bun.spawnSync([join(repoRoot, "bin", "aegis-mcp"), "--port", "1"], { env: hostMcpEnv(home) });
    expect(role.exitCode).toBe(2);
    expect(role.stderr.toString()).toContain('unexpected argument "--port"');
    expect(role.stdout.toString()).toBe("");
    // No daemon was started by any refused invocation.
    expect(existsSync(join(home.dir, "aegisd.sock"))).toBe(false);
  });

  it("prints group usage for aegis mcp --help", async () => {
    await using home = new TestHome();
    const r = await home.ok(["mcp", "--help"]);
    expect(r.stdout).toContain("install");
    expect(r.stdout).toContain("uninstall");
    expect(r.stdout).toContain("serve");
  });
});

describe("aegis mcp with the MCP Inspector CLI (npm @modelcontextprotocol/inspector)", () => {
  const inspector = join(repoRoot, "node_modules", ".bin", "mcp-inspector");
  let home: TestHome;
  beforeAll(() => {
    home = new TestHome();
  });
  afterAll(async () => {
    await home?.[Symbol.asyncDispose]();
  });

  async function inspect(args: string[]) {
    // HOME is the test home: the inspector keeps a catalog under ~/.mcp-inspector.
    const proc = Bun.spawn([inspector, "--cli", "-e", `AEGIS_HOME=${home.dir}`, "-e", "AEGIS_ROUTER_PORT=0", "-e", "AEGIS_WARM=0", aegisBin(), "mcp", ...args], {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home.dir },
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    return { stdout, stderr, code };
  }

  it("lists the tools", async () => {
    const r = await inspect(["--method", "tools/list"]);
    expect(r.code).toBe(0);
    const { tools } = JSON.parse(r.stdout) as { tools: { name: string; inputSchema: { type: string } }[] };
    expect(tools.map((t) => t.name)).toEqual(TOOLS);
    expect(tools.every((t) => t.inputSchema.type === "object")).toBe(true);
  }, 60_000);

  it("calls secret_list and sees the names", async () => {
    await home.ok(["secret", "set", "DEPLOY_KEY", "dk-value-7c1"]);
    const r = await inspect(["--method", "tools/call", "--tool-name", "secret_list"]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ structuredContent: { scope: "workspace", secrets: [{ name: "DEPLOY_KEY" }] } });
    expect(r.stdout).not.toContain("dk-value-7c1");
  }, 60_000);

  it("gets a tool error with the daemon's message for an unknown instance", async () => {
    const r = await inspect(["--method", "tools/call", "--tool-name", "instance_info", "--tool-arg", "instance=ghost"]);
    // The inspector prints the result on stdout, then fails (exit 5) naming the tool error on stderr.
    expect(JSON.parse(r.stdout)).toEqual({ content: [{ type: "text", text: "instance \"ghost\" not found\nhint: list instances with 'aegis instance list'" }], isError: true });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("tool_is_error");
  }, 60_000);
});

describe("the MCP Inspector package", () => {
  it("is pinned in devDependencies so CI installs the same client", () => {
    const pkg = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { devDependencies: Record<string, string> };
    expect(pkg.devDependencies["@modelcontextprotocol/inspector"]).toMatch(/^\d+\.\d+\.\d+$/);
  });
});

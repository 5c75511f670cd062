/**
 * aegis-mcp-guest as a process, from source and as a `bun build --compile`
 * binary (built with build.ts's flags: the SDK must work in the compiled
 * artefact). The SDK's MCP Client drives it over stdio; a fake host on a unix
 * socket (AEGIS_MCP_BRIDGE) answers some calls and refuses others.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { McpBridgeErrorCode } from "../../src/api/schema/mcp.ts";
import { repoRoot } from "../helpers/aegis.ts";
import { FakeHost, HostRefusal, sampleChild, sampleHandlers } from "../unit/guest/mcp/fake-host.ts";

const buildDir = mkdtempSync(join(tmpdir(), "aegis-mcp-bin-"));
const compiled = join(buildDir, "aegis-mcp-guest");
afterAll(() => rmSync(buildDir, { recursive: true, force: true }));

/** Build a binary whose entry dispatches to the role lazily, as src/main.ts does, with build.ts's flags. */
beforeAll(async () => {
  const entry = join(buildDir, "entry.ts");
  writeFileSync(
    entry,
    `async function main(): Promise<void> {
  const run = await import(${JSON.stringify(join(repoRoot, "guest/mcp/main.ts"))}).then((m) => m.main);
  await run(process.argv.slice(2));
}
main().catch((err: unknown) => {
  process.stderr.write(\`fatal: \${err instanceof Error ? err.stack : String(err)}\\n\`);
  process.exit(1);
});
`,
  );
  const flags = ["--compile", "--no-compile-autoload-dotenv", "--no-compile-autoload-bunfig", "--bytecode", "--format=esm", "--minify-syntax", "--minify-whitespace", "--define", 'BUILD_VERSION="9.9.9-test"'];
  const proc = Bun.spawn([process.execPath, "build", ...flags, entry, "--outfile", compiled], { cwd: repoRoot, stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`bun build --compile failed (${code}):\n${out}\n${err}`);
}, 120_000);

const variants = [
  { name: "from source", command: () => [process.execPath, "-e", 'import("./guest/mcp/main.ts").then((m) => m.main([]))'], version: "0.0.0-dev" },
  { name: "compiled", command: () => [compiled], version: "9.9.9-test" },
];

for (const variant of variants) {
  describe(`aegis-mcp-guest ${variant.name}`, () => {
    let host: FakeHost;
    let client: Client;
    let stderr = "";
    beforeAll(async () => {
      host = new FakeHost({
        ...sampleHandlers(),
        "mcp.instance_spawn": (p) => {
          const image = (p as { image: string }).image;
          if (image !== "busybox") throw new HostRefusal(McpBridgeErrorCode.denied, `image "${image}" (docker.io/library/${image}:latest) is not in allowed_images (busybox)`, { code: "invalid_request", hint: "self_info lists the allowed images under capabilities.allowed_images" });
          return sampleChild;
        },
        "mcp.instance_stop": () => {
          throw new HostRefusal(McpBridgeErrorCode.denied, 'instance "db" is not a child of this instance');
        },
      });
      const [command, ...args] = variant.command();
      const transport = new StdioClientTransport({ command: command!, args, cwd: repoRoot, env: { AEGIS_MCP_BRIDGE: host.path }, stderr: "pipe" });
      transport.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
      client = new Client({ name: "integration", version: "0" });
      await client.connect(transport);
    }, 30_000);
    afterAll(async () => {
      await client?.close();
      host?.stop();
    });

    it("initializes as aegis-mcp-guest with its version and the tools capability", () => {
      expect(client.getServerVersion()).toMatchObject({ name: "aegis-mcp-guest", version: variant.version });
      expect(client.getServerCapabilities()?.tools).toBeDefined();
    });

    it("lists the eight tools with their input schemas", async () => {
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name)).toEqual(["self_info", "instance_spawn", "instance_list", "instance_stop", "expose_port", "unexpose_port", "keepalive_acquire", "keepalive_release"]);
      const schemas = Object.fromEntries(tools.map((t) => [t.name, t.inputSchema]));
      expect(schemas.instance_spawn).toMatchObject({ type: "object", additionalProperties: false });
      // No image means the base rootfs, so nothing is required.
      expect(schemas.instance_spawn!.required ?? []).toEqual([]);
      expect(schemas.instance_spawn!.properties).toMatchObject({ image: { type: "string" }, expose: { type: "array" }, memory_mb: { type: "integer" } });
      expect(schemas.keepalive_acquire).toMatchObject({ required: ["seconds"], properties: { seconds: { type: "integer", minimum: 1, maximum: 3600 } } });
      expect(schemas.instance_stop).toMatchObject({ required: ["instance"] });
      expect(schemas.expose_port).toMatchObject({ required: ["port"] });
    });

    it("forwards each allowed call to the host with the right method and params", async () => {
      const calls: [string, Record<string, unknown>, string][] = [
        ["self_info", {}, "mcp.self_info"],
        ["instance_spawn", { image: "busybox", command: ["httpd", "-f", "-p", "8080"], name: "helper", expose: [8080], memory_mb: 256 }, "mcp.instance_spawn"],
        ["instance_list", {}, "mcp.instance_list"],
        ["expose_port", { port: 3000 }, "mcp.expose_port"],
        ["unexpose_port", { port: 3000 }, "mcp.unexpose_port"],
        ["keepalive_acquire", { seconds: 600 }, "mcp.keepalive_acquire"],
        ["keepalive_release", {}, "mcp.keepalive_release"],
      ];
      for (const [tool, args, method] of calls) {
        const before = host.received.length;
        const result = await client.callTool({ name: tool, arguments: args });
        expect({ tool, isError: result.isError ?? false }).toEqual({ tool, isError: false });
        expect(host.received.slice(before).map((r) => [r.method, r.params])).toEqual([[method, args]]);
        expect(result.structuredContent).toEqual((await sampleHandlers()[method]!(args)) as Record<string, unknown>);
      }
    });

    it("turns a host refusal into an MCP tool error carrying the host's message", async () => {
      const spawn = await client.callTool({ name: "instance_spawn", arguments: { image: "ubuntu" } });
      expect(spawn.isError).toBe(true);
      expect(spawn.content).toEqual([{ type: "text", text: 'image "ubuntu" (docker.io/library/ubuntu:latest) is not in allowed_images (busybox)\nhint: self_info lists the allowed images under capabilities.allowed_images' }]);
      const stop = await client.callTool({ name: "instance_stop", arguments: { instance: "db" } });
      expect(stop.isError).toBe(true);
      expect(stop.content).toEqual([{ type: "text", text: 'instance "db" is not a child of this instance' }]);
      expect(host.received.at(-1)).toMatchObject({ method: "mcp.instance_stop", params: { instance: "db" } });
    });

    it("rejects invalid arguments without asking the host", async () => {
      const before = host.received.length;
      const result = await client.callTool({ name: "keepalive_acquire", arguments: { seconds: 86400 } });
      expect(result.isError).toBe(true);
      expect(host.received.length).toBe(before);
    });

    it("keeps protocol on stdout: nothing was logged on stderr", () => {
      expect(stderr).toBe("");
    });

    it("exits by itself when the client closes stdin, with the bridge connection open", async () => {
      expect(host.connections).toBe(1);
      const started = performance.now();
      await client.close();
      // The transport waits up to 2 s for a voluntary exit before it sends SIGTERM.
      expect(performance.now() - started).toBeLessThan(1500);
    });
  });
}

describe("aegis-mcp-guest compiled binary as a process", () => {
  async function run(args: string[], stdin: string, env: Record<string, string> = {}) {
    const proc = Bun.spawn([compiled, ...args], { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env }, stdin: new Blob([stdin]), stdout: "pipe", stderr: "pipe" });
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    return { stdout, stderr, code };
  }

  it("answers initialize and exits 0 when the client closes stdin", async () => {
    const init = { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "0" } } };
    const started = performance.now();
    const r = await run([], `${JSON.stringify(init)}\n`, { AEGIS_MCP_BRIDGE: "/nonexistent.sock" });
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    const reply = JSON.parse(r.stdout.trim());
    expect(reply).toMatchObject({ jsonrpc: "2.0", id: 1, result: { serverInfo: { name: "aegis-mcp-guest" }, capabilities: { tools: {} } } });
    expect(performance.now() - started).toBeLessThan(5000);
  });

  it("reports an unreachable bridge as a tool error naming the socket", async () => {
    const client = new Client({ name: "integration", version: "0" });
    await client.connect(new StdioClientTransport({ command: compiled, args: [], env: { AEGIS_MCP_BRIDGE: "/nonexistent/mcp.sock" }, stderr: "ignore" }));
    try {
      const result = await client.callTool({ name: "self_info", arguments: {} });
      expect(result.isError).toBe(true);
      expect((result.content as { text: string }[])[0]!.text).toContain("the Aegis host bridge at /nonexistent/mcp.sock is not available (ENOENT)");
    } finally {
      await client.close();
    }
  });

  it("exits 0 on SIGTERM while the client keeps stdin open", async () => {
    const proc = Bun.spawn([compiled], { env: { PATH: process.env.PATH ?? "/usr/bin:/bin" }, stdin: "pipe", stdout: "pipe", stderr: "pipe" });
    const stderr = new Response(proc.stderr).text();
    const reader = proc.stdout.getReader();
    proc.stdin.write(`${JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" })}\n`);
    await proc.stdin.flush();
    // Once it answers a request it is serving, so its signal handlers are installed.
    let out = "";
    while (!out.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      out += new TextDecoder().decode(value);
    }
    expect(JSON.parse(out.trim())).toEqual({ jsonrpc: "2.0", id: 1, result: {} });
    proc.kill("SIGTERM");
    const drain = (async () => {
      for (let r = await reader.read(); !r.done; r = await reader.read()) out += new TextDecoder().decode(r.value);
    })();
    const [code, err] = await Promise.all([proc.exited, stderr, drain]);
    expect({ code, signal: proc.signalCode, err }).toEqual({ code: 0, signal: null, err: "" });
  });

  it("prints usage for --help and refuses arguments with a hint", async () => {
    const help = await run(["--help"], "");
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("usage: aegis-mcp-guest");
    const bad = await run(["--port", "1"], "");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('aegis-mcp-guest: unexpected argument "--port"');
    expect(bad.stderr).toContain("hint:");
  });
});

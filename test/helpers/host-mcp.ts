/**
 * Drive the host MCP server (`bin/aegis mcp`) with the official SDK client
 * over stdio, against a test AEGIS_HOME.
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { aegisBin, type TestHome } from "./aegis.ts";

/** A connected SDK client and what the server wrote on stderr. */
export interface HostMcp {
  client: Client;
  stderr(): string;
  /** Call a tool; returns the result (tool errors included). */
  call(name: string, args?: Record<string, unknown>, timeoutMs?: number): Promise<CallToolResult>;
  close(): Promise<void>;
}

/** The environment the server gets: the test AEGIS_HOME, router port 0, no warm template (HOME stays: the guest kernel is cached under it). */
export function hostMcpEnv(home: TestHome, extra: Record<string, string> = {}): Record<string, string> {
  return { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root", AEGIS_HOME: home.dir, AEGIS_ROUTER_PORT: "0", AEGIS_E2B_PORT: "0", AEGIS_WARM: "0", ...extra };
}

/** Spawn `command` (default `bin/aegis mcp`) and connect the SDK client to it. */
export async function connectHostMcp(home: TestHome, opts: { command?: string; args?: string[]; env?: Record<string, string> } = {}): Promise<HostMcp> {
  let stderr = "";
  const transport = new StdioClientTransport({ command: opts.command ?? aegisBin(), args: opts.args ?? ["mcp"], env: hostMcpEnv(home, opts.env), stderr: "pipe" });
  transport.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const client = new Client({ name: "aegis-test", version: "0" }, { capabilities: {} });
  await client.connect(transport);
  return {
    client,
    stderr: () => stderr,
    call: async (name, args = {}, timeoutMs = 60_000) => (await client.callTool({ name, arguments: args }, undefined, { timeout: timeoutMs })) as CallToolResult,
    close: () => client.close(),
  };
}

/** The text of a result's first content block. */
export function textOf(result: CallToolResult): string {
  const first = result.content[0];
  return first && first.type === "text" ? first.text : "";
}

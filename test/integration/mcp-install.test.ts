/**
 * `aegis mcp install` / `uninstall` against a temporary HOME and project
 * directory: through a stub `claude` on PATH that records its argv, and
 * through each client's config file (Claude Code, Cursor, VS Code), keeping
 * the user's other entries; then the registered command is started the way
 * the client would start it and answers MCP.
 */
import { afterEach, beforeEach, describe, expect, it } from "bun:test";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { aegisBin, TestHome } from "../helpers/aegis.ts";

let home: TestHome;
let userHome: string;
let project: string;
let stubDir: string;

beforeEach(() => {
  home = new TestHome();
  userHome = mkdtempSync(join(tmpdir(), "aegis-home-"));
  project = mkdtempSync(join(tmpdir(), "aegis-proj-"));
  stubDir = mkdtempSync(join(tmpdir(), "aegis-stub-"));
});
afterEach(async () => {
  await home[Symbol.asyncDispose]();
  for (const d of [userHome, project, stubDir]) rmSync(d, { recursive: true, force: true });
});

/** PATH without any real `claude` (system directories only), optionally with the stub first. */
function pathWith(stub: boolean): string {
  return [...(stub ? [stubDir] : []), "/usr/local/bin", "/usr/bin", "/bin"].join(":");
}

/** Run `aegis mcp ARGS` from the project directory with the temporary HOME. */
async function mcp(args: string[], opts: { stub?: boolean; env?: Record<string, string> } = {}) {
  const proc = Bun.spawn([aegisBin(), "mcp", ...args], {
    cwd: project,
    env: { PATH: pathWith(opts.stub ?? false), HOME: userHome, AEGIS_HOME: home.dir, ...opts.env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { stdout, stderr, code };
}

/** A `claude` stub: records each invocation's argv (one per line) and cwd; `exitWith` text makes `mcp add` fail once. */
function installStub(opts: { failAddOnceWith?: string } = {}): string {
  const log = join(stubDir, "calls");
  mkdirSync(log);
  const failFlag = join(stubDir, "fail-once");
  if (opts.failAddOnceWith) writeFileSync(failFlag, opts.failAddOnceWith);
  const script = `#!/bin/sh
n=$(ls ${log} | wc -l)
{ pwd; printf '%s\\n' "$@"; } > ${log}/$n
if [ "$2" = add ] && [ -f ${failFlag} ]; then cat ${failFlag} >&2; rm ${failFlag}; exit 1; fi
exit 0
`;
  writeFileSync(join(stubDir, "claude"), script);
  chmodSync(join(stubDir, "claude"), 0o755);
  return log;
}

function calls(log: string): { cwd: string; argv: string[] }[] {
  return readdirSync(log)
    .sort((a, b) => Number(a) - Number(b))
    .map((f) => {
      const [cwd, ...argv] = readFileSync(join(log, f), "utf8").trimEnd().split("\n");
      return { cwd: cwd!, argv };
    });
}

// biome-ignore lint/suspicious/noExplicitAny: parsed config files of any shape
const readJson = (p: string) => JSON.parse(readFileSync(p, "utf8")) as Record<string, any>;

describe("aegis mcp install --client claude with claude on PATH", () => {
  it("runs claude mcp add with the user scope, AEGIS_HOME and this binary", async () => {
    const log = installStub();
    const r = await mcp(["install", "--client", "claude"], { stub: true });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("through");
    expect(calls(log)).toEqual([{ cwd: project, argv: ["mcp", "add", "--scope", "user", "-e", `AEGIS_HOME=${home.dir}`, "aegis", "--", aegisBin(), "mcp"] }]);
    // claude owns its config: nothing was written by us.
    expect(existsSync(join(userHome, ".claude.json"))).toBe(false);
  });

  it("passes --scope project and --name, and uninstall runs claude mcp remove", async () => {
    const log = installStub();
    expect((await mcp(["install", "--scope", "project", "--name", "aegis-dev"], { stub: true })).code).toBe(0);
    expect((await mcp(["uninstall", "--scope", "project", "--name", "aegis-dev"], { stub: true })).code).toBe(0);
    expect(calls(log).map((c) => c.argv)).toEqual([
      ["mcp", "add", "--scope", "project", "-e", `AEGIS_HOME=${home.dir}`, "aegis-dev", "--", aegisBin(), "mcp"],
      ["mcp", "remove", "--scope", "project", "aegis-dev"],
    ]);
  });

  it("replaces its own earlier registration when claude says it already exists", async () => {
    const log = installStub({ failAddOnceWith: "MCP server aegis already exists in user config" });
    const r = await mcp(["install"], { stub: true });
    expect(r.code).toBe(0);
    expect(calls(log).map((c) => c.argv.slice(0, 2))).toEqual([
      ["mcp", "add"],
      ["mcp", "remove"],
      ["mcp", "add"],
    ]);
  });

  it("fails with claude's message when claude fails otherwise", async () => {
    installStub({ failAddOnceWith: "permission denied writing config" });
    const r = await mcp(["install"], { stub: true });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("permission denied writing config");
  });
});

describe("aegis mcp install through config files", () => {
  it("adds to ~/.claude.json keeping the user's settings and other servers, and uninstall removes only ours", async () => {
    const file = join(userHome, ".claude.json");
    const before = { numStartups: 7, projects: { "/x": { allowedTools: [] } }, mcpServers: { github: { type: "stdio", command: "gh-mcp", args: [] } } };
    writeFileSync(file, JSON.stringify(before), { mode: 0o600 });
    const r = await mcp(["install", "--client", "claude"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(file);
    const after = readJson(file);
    expect(after).toEqual({ ...before, mcpServers: { ...before.mcpServers, aegis: { type: "stdio", command: aegisBin(), args: ["mcp"], env: { AEGIS_HOME: home.dir } } } });
    expect(Bun.file(file).size).toBeGreaterThan(0);
    expect((await import("node:fs")).statSync(file).mode & 0o777).toBe(0o600);
    // Installing again changes nothing.
    expect((await mcp(["install"])).stderr).toContain("already registered");
    const un = await mcp(["uninstall"]);
    expect(un.code).toBe(0);
    expect(readJson(file)).toEqual(before);
    expect((await mcp(["uninstall"])).stderr).toContain("is not registered");
  });

  it("writes .mcp.json in the project for --scope project", async () => {
    expect((await mcp(["install", "--scope", "project"])).code).toBe(0);
    expect(readJson(join(project, ".mcp.json"))).toEqual({ mcpServers: { aegis: { type: "stdio", command: aegisBin(), args: ["mcp"], env: { AEGIS_HOME: home.dir } } } });
  });

  it("writes Cursor's ~/.cursor/mcp.json and .cursor/mcp.json", async () => {
    const user = join(userHome, ".cursor", "mcp.json");
    mkdirSync(join(userHome, ".cursor"));
    writeFileSync(user, JSON.stringify({ mcpServers: { other: { command: "x" } } }));
    expect((await mcp(["install", "--client", "cursor"])).code).toBe(0);
    expect(readJson(user)).toEqual({ mcpServers: { other: { command: "x" }, aegis: { command: aegisBin(), args: ["mcp"], env: { AEGIS_HOME: home.dir } } } });
    expect((await mcp(["install", "--client", "cursor", "--scope", "project"])).code).toBe(0);
    expect(readJson(join(project, ".cursor", "mcp.json")).mcpServers!.aegis).toMatchObject({ command: aegisBin() });
    expect((await mcp(["uninstall", "--client", "cursor"])).code).toBe(0);
    expect(readJson(user)).toEqual({ mcpServers: { other: { command: "x" } } });
  });

  it("writes VS Code's .vscode/mcp.json (servers) and the user profile's mcp.json", async () => {
    const ws = join(project, ".vscode", "mcp.json");
    mkdirSync(join(project, ".vscode"));
    writeFileSync(ws, JSON.stringify({ inputs: [{ id: "k", type: "promptString" }], servers: { db: { type: "stdio", command: "db-mcp" } } }));
    expect((await mcp(["install", "--client", "vscode", "--scope", "project"])).code).toBe(0);
    expect(readJson(ws)).toEqual({ inputs: [{ id: "k", type: "promptString" }], servers: { db: { type: "stdio", command: "db-mcp" }, aegis: { type: "stdio", command: aegisBin(), args: ["mcp"], env: { AEGIS_HOME: home.dir } } } });
    const xdg = join(userHome, "xdg");
    expect((await mcp(["install", "--client", "vscode"], { env: { XDG_CONFIG_HOME: xdg } })).code).toBe(0);
    expect(readJson(join(xdg, "Code", "User", "mcp.json")).servers!.aegis).toMatchObject({ type: "stdio", command: aegisBin() });
    expect((await mcp(["uninstall", "--client", "vscode", "--scope", "project"])).code).toBe(0);
    expect(readJson(ws).servers).toEqual({ db: { type: "stdio", command: "db-mcp" } });
  });

  it("leaves a file that is not JSON untouched and says how to proceed", async () => {
    const file = join(userHome, ".claude.json");
    const text = '{ "mcpServers": { // a comment\n } }';
    writeFileSync(file, text);
    const r = await mcp(["install"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${file} is not valid JSON`);
    expect(r.stderr).toContain("aegis mcp install --client json");
    expect(readFileSync(file, "utf8")).toBe(text);
    writeFileSync(file, JSON.stringify({ mcpServers: ["not", "a", "map"] }));
    const r2 = await mcp(["install"]);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toContain('"mcpServers" in');
  });

  it("omits env when AEGIS_HOME is not set", async () => {
    const proc = Bun.spawn([aegisBin(), "mcp", "install", "--client", "json"], { cwd: project, env: { PATH: pathWith(false), HOME: userHome }, stdout: "pipe", stderr: "pipe" });
    const [stdout, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toEqual({ mcpServers: { aegis: { type: "stdio", command: aegisBin(), args: ["mcp"] } } });
  });
});

describe("aegis mcp install --client json and bad input", () => {
  it("prints the snippet on stdout and writes nothing", async () => {
    const r = await mcp(["install", "--client", "json"]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ mcpServers: { aegis: { type: "stdio", command: aegisBin(), args: ["mcp"], env: { AEGIS_HOME: home.dir } } } });
    expect(readdirSync(userHome)).toEqual([]);
    expect(readdirSync(project)).toEqual([]);
  });

  it("refuses unknown clients, scopes, names and flags, and uninstall of json, with a non-zero exit", async () => {
    for (const args of [
      ["install", "--client", "emacs"],
      ["install", "--scope", "local"],
      ["install", "--name", "bad name"],
      ["install", "--force"],
      ["uninstall", "--client", "json"],
    ]) {
      const r = await mcp(args);
      expect({ args, failed: r.code !== 0 }).toEqual({ args, failed: true });
    }
    expect((await mcp(["install", "--client", "emacs"])).stderr).toContain("expected one of: claude, cursor, vscode, json");
    expect(readdirSync(userHome)).toEqual([]);
  });
});

describe("the registered server", () => {
  it("starts from the config entry exactly as a client would and lists the tools", async () => {
    expect((await mcp(["install", "--client", "claude", "--scope", "project"])).code).toBe(0);
    const entry = readJson(join(project, ".mcp.json")).mcpServers!.aegis as { command: string; args: string[]; env: Record<string, string> };
    const client = new Client({ name: "as-claude", version: "0" });
    await client.connect(new StdioClientTransport({ command: entry.command, args: entry.args, env: { PATH: pathWith(false), HOME: process.env.HOME ?? "/root", ...entry.env }, stderr: "ignore" }));
    try {
      const { tools } = await client.listTools();
      expect(tools.length).toBe(20);
      const r = await client.callTool({ name: "instance_list", arguments: {} });
      expect(r.structuredContent).toEqual({ instances: [] });
    } finally {
      await client.close();
    }
  }, 30_000);
});

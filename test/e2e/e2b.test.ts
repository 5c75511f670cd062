/**
 * The unmodified e2b SDK (pinned in package.json) against real VMs, under
 * Bun and under Node 20, configured only by `aegis e2b env`. Two sandboxes
 * are booted once and reused by every check (driver.mjs says what each mode
 * checks): created under Bun, checked under Bun and again under Node, the
 * sandbox's server reached with curl through the router (host and E2B
 * headers), then pause/connect and the two kinds of timeout.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { join } from "node:path";
import { E2bEnv } from "../../src/api/schema/e2b.ts";
import { Instance } from "../../src/api/schema/instances.ts";
import { TestHome, repoRoot } from "../helpers/aegis.ts";

const TIMEOUT = 600_000;
const DRIVER = join(repoRoot, "test", "e2e", "e2b", "driver.mjs");
let home: TestHome;
let env: Record<string, string>;
let ids: [string, string];

async function drive(runtime: "bun" | "node", args: string[]): Promise<string> {
  const bin = runtime === "bun" ? process.execPath : Bun.which("node");
  if (!bin) throw new Error("node is not on PATH: the E2B e2e test runs the SDK under Node 20 too (install nodejs)");
  const p = Bun.spawn([bin, DRIVER, ...args], { cwd: repoRoot, env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root", ...env }, stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`${runtime} driver.mjs ${args[0]} exited ${code}\nstdout:\n${stdout}\nstderr:\n${stderr}`);
  return stdout;
}

function oks(stdout: string): string[] {
  return stdout
    .split("\n")
    .filter((l) => l.startsWith("ok "))
    .map((l) => l.slice(3));
}

const CHECKS = [
  "per-sandbox routing of files and envs",
  "commands stream stdout and stderr",
  "non-zero exit is a CommandExitError",
  "background command killed",
  "connect to a running command",
  "stdin",
  "pty with resize",
  "files write read list exists rename remove",
  "watch a directory",
  "upload over 10 MB",
  "Sandbox.list with filters and pagination",
  "setTimeout",
  "metrics",
  "wrong API key refused",
  "network options kept",
  "getHost",
];

async function curl(args: string[]): Promise<string> {
  const p = Bun.spawn(["curl", "-sS", "-m", "60", ...args], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`curl ${args.join(" ")} failed (${code}): ${err}`);
  return out;
}

beforeAll(async () => {
  home = new TestHome();
  await home.ok(["up"]);
  const e = E2bEnv.parse(JSON.parse((await home.ok(["e2b", "env", "--json"])).stdout));
  env = { E2B_API_URL: e.api_url, E2B_SANDBOX_URL: e.sandbox_url, E2B_DOMAIN: e.domain, E2B_API_KEY: e.api_key };
}, TIMEOUT);

afterAll(async () => {
  await home?.[Symbol.asyncDispose]();
});

describe("the e2b SDK against Aegis", () => {
  it("prints export lines that evaluate to the same settings", async () => {
    const lines = (await home.ok(["e2b", "env"])).stdout.trim().split("\n");
    expect(lines).toEqual([`export E2B_API_URL=${env.E2B_API_URL}`, `export E2B_SANDBOX_URL=${env.E2B_SANDBOX_URL}`, `export E2B_DOMAIN=${env.E2B_DOMAIN}`, `export E2B_API_KEY=${env.E2B_API_KEY}`]);
    expect(env.E2B_API_KEY).toMatch(/^e2b_[0-9a-f]{40}$/);
  });

  it("creates two sandboxes at once under Bun; they are Aegis instances with their E2B metadata", async () => {
    const out = await drive("bun", ["create"]);
    expect(oks(out)).toEqual(["create two sandboxes at once"]);
    const line = out.split("\n").find((l) => l.startsWith("id "))!;
    ids = line.slice(3).split(" ") as [string, string];
    const listed = Instance.array().parse(JSON.parse((await home.ok(["instance", "list", "--json"])).stdout));
    const a = listed.find((i) => i.id === ids[0])!;
    const b = listed.find((i) => i.id === ids[1])!;
    expect(a.e2b).toMatchObject({ template: "base", metadata: { suite: "e2b-e2e", who: "a" }, auto_pause: true, timeout_s: 900 });
    expect(b.e2b).toMatchObject({ template: "base", metadata: { suite: "e2b-e2e", who: "b" }, auto_pause: false });
    // E2B's allowOut before denyOut, as Aegis's ordered rules (daemon/e2b/network.ts).
    expect(b.network).toEqual({ mode: "default", rules: [{ action: "allow", target: "203.0.113.7" }, { action: "deny", target: "203.0.113.0/24" }] });
    expect(a.network).toEqual({ mode: "default", rules: [] });
    expect(a.state).toBe("running");
    const table = (await home.ok(["instance", "list"])).stdout;
    expect(table).toContain("template=base");
    expect(table).toContain("who=a");
  }, TIMEOUT);

  it("passes every check under Bun, and getHost is reached with curl (host and E2B headers)", async () => {
    const out = await drive("bun", ["checks", ...ids]);
    expect(oks(out)).toEqual(CHECKS);
    const host = out.split("\n").find((l) => l.startsWith("host "))!.slice(5);
    expect(host).toBe(`8000-${ids[0]}.${env.E2B_DOMAIN}`);
    expect(await curl([`http://${host}/`])).toBe("served-by-a\n");
    const router = `http://127.0.0.1:${env.E2B_DOMAIN!.split(":")[1]}`;
    expect(await curl(["-H", `E2b-Sandbox-Id: ${ids[0]}`, "-H", "E2b-Sandbox-Port: 8000", `${router}/`])).toBe("served-by-a\n");
    // envd through the router needs the sandbox's access token like anywhere else.
    expect(await curl(["-o", "/dev/null", "-w", "%{http_code}", `http://49983-${ids[0]}.${env.E2B_DOMAIN}/health`])).toBe("401");
  }, TIMEOUT);

  it("passes every check under Node 20 against the same sandboxes", async () => {
    const v = Bun.spawnSync([Bun.which("node") ?? "node", "--version"]).stdout.toString().trim();
    expect(v).toMatch(/^v20\./);
    expect(oks(await drive("node", ["checks", ...ids]))).toEqual(CHECKS);
  }, TIMEOUT);

  it("pauses and connects with the files kept, pauses on one timeout and kills on the other", async () => {
    expect(oks(await drive("bun", ["lifecycle", ...ids]))).toEqual(["envd wakes a paused sandbox", "pause then connect keeps files", "timeout pauses with autoPause", "timeout kills", "kill"]);
    const listed = Instance.array().parse(JSON.parse((await home.ok(["instance", "list", "--json"])).stdout));
    expect(listed.filter((i) => ids.includes(i.id))).toEqual([]);
  }, TIMEOUT);
});

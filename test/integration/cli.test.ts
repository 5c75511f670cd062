import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { repoRoot, TestHome } from "../helpers/aegis.ts";

// One daemon for this file: every test uses its own names, so they do not interfere.
let home: TestHome;
beforeAll(async () => {
  home = new TestHome();
  await home.ok(["up"]);
});
afterAll(async () => {
  await home[Symbol.asyncDispose]();
});

describe("CLI basics", () => {
  it("prints the version and usage for the root and every group", async () => {
    expect((await home.ok(["--version"])).stdout).toMatch(/^aegis \d+\.\d+\.\d+/);
    expect((await home.ok(["help"])).stdout).toContain("secret");
    for (const group of ["app", "secret", "kit"]) {
      const r = await home.ok([group, "help"]);
      expect(r.stdout).toContain("COMMANDS");
    }
  });
  it("rejects unknown commands and flags with a suggestion and exit 2", async () => {
    const cmd = await home.run(["secrte", "list"]);
    expect(cmd.code).toBe(2);
    expect(cmd.stderr).toContain('unknown command "secrte" (did you mean "secret"?)');
    const flag = await home.run(["app", "create", "--nmae", "x", "--image", "alpine", "--", "true"]);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain("unknown flag --nmae (did you mean --name?)");
    const missing = await home.run(["app", "create", "--image", "alpine", "--", "true"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("missing required flag --name");
    expect((await home.ok(["app", "list", "--json"])).stdout).not.toContain('"x"');
  });
});

describe("aegis secret", () => {
  it("sets and lists workspace and app secrets with the spec's messages, never printing values", async () => {
    await home.ok(["app", "create", "--name", "sec-app", "--image", "alpine:3.21", "--", "true"]);
    expect((await home.ok(["secret", "set", "GLOBAL_TOKEN", "abc123-canary"])).stderr).toBe("Workspace secret GLOBAL_TOKEN set\n");
    expect((await home.ok(["secret", "set-workspace", "OTHER", "x-canary"])).stderr).toBe("Workspace secret OTHER set\n");
    expect((await home.ok(["secret", "set", "sec-app", "API_KEY", "sk-test123-canary"])).stderr).toBe("Secret API_KEY set for sec-app\n");
    expect((await home.ok(["secret", "set", "sec-app", "DB_PASSWORD", "-"], { stdin: "pw-canary\n" })).stderr).toBe("Secret DB_PASSWORD set for sec-app\n");

    expect((await home.ok(["secret", "list", "sec-app"])).stdout).toBe("Secrets for sec-app:\n  API_KEY\n  DB_PASSWORD\n");
    const ws = (await home.ok(["secret", "list-workspace"])).stdout;
    expect(ws).toStartWith("Workspace secrets:\n");
    expect(ws).toContain("  GLOBAL_TOKEN\n");
    expect((await home.ok(["secret", "list"])).stdout).toBe(ws);
    expect((await home.ok(["secret", "delete", "sec-app", "API_KEY"])).stderr).toBe("Secret API_KEY deleted from sec-app\n");
    expect((await home.ok(["secret", "delete", "OTHER"])).stderr).toBe("Workspace secret OTHER deleted\n");

    const log = readFileSync(join(home.dir, "data", "aegisd.log"), "utf8");
    const db = readFileSync(join(home.dir, "data", "aegis.db"));
    for (const canary of ["abc123-canary", "sk-test123-canary", "pw-canary"]) {
      expect(log).not.toContain(canary);
      expect(db.includes(Buffer.from(canary))).toBe(false);
    }
  });
  it("reports bad names and unknown secrets clearly", async () => {
    const bad = await home.run(["secret", "set", "not-valid", "v"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('invalid key "not-valid"');
    const gone = await home.run(["secret", "delete", "NOPE_NOT_SET"]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain("secret NOPE_NOT_SET not found");
  });
});

describe("aegis app", () => {
  it("creates, lists, shows and deletes an app; the command after -- passes through untouched", async () => {
    const created = await home.ok(["app", "create", "--name", "myapp", "--image", "python:3.12", "--expose", "80", "--expose", "443", "--", "python", "-m", "http.server", "80", "--help"]);
    expect(created.stderr).toMatch(/^App created: myapp \(id=app-[0-9a-f]+\)\n$/);
    const id = /id=(app-[0-9a-f]+)/.exec(created.stderr)![1]!;

    const list = (await home.ok(["app", "list"])).stdout.split("\n");
    expect(list[0]).toBe("NAME                 IMAGE                          ID");
    expect(list).toContain(`${"myapp".padEnd(21)}${"python:3.12".padEnd(31)}${id}`);

    const info = (await home.ok(["app", "info", id])).stdout;
    expect(info).toBe(
      `Name:    myapp\nID:      ${id}\nImage:   python:3.12\nCommand: python -m http.server 80 --help\nPorts:   80, 443\n\nReleases (0):\n`,
    );
    expect((await home.ok(["app", "delete", "myapp"])).stderr).toBe('App "myapp" deleted\n');
    const after = await home.run(["app", "info", "myapp"]);
    expect(after.code).toBe(1);
    expect(after.stderr).toContain('app "myapp" not found');
  });
  it("refuses a bad port without creating anything", async () => {
    const port = await home.run(["app", "create", "--name", "bad", "--image", "x", "--expose", "99999", "--", "true"]);
    expect(port.code).toBe(2);
    expect(port.stderr).toContain('invalid --expose value "99999"');
    expect((await home.ok(["app", "list"])).stdout).not.toContain("bad ");
  });
  it("creates an app without a command, which then runs its image's ENTRYPOINT and CMD", async () => {
    await home.ok(["app", "create", "--name", "imgdefault", "--image", "x"]);
    expect((await home.ok(["app", "info", "imgdefault"])).stdout).toContain("Command: (the image's ENTRYPOINT and CMD)");
    await home.ok(["app", "delete", "imgdefault"]);
  });
});

describe("aegis kit", () => {
  it("installs the shipped agent kit from YAML and lists, shows and uninstalls it", async () => {
    expect((await home.ok(["kit", "install", join(repoRoot, "kits", "agent.yaml")])).stderr).toBe("Kit agent v0.4.0 installed\n");
    const list = (await home.ok(["kit", "list"])).stdout.split("\n");
    expect(list[0]).toBe("NAME         VERSION    STATUS     IMAGE                          DESCRIPTION");
    expect(list[1]).toStartWith("agent        v0.4.0     ");
    expect(list[1]).toContain("python:3.12-alpine");
    const info = (await home.ok(["kit", "info", "agent"])).stdout;
    expect(info).toContain("Name:        agent\nVersion:     v0.4.0\nDescription: Messaging-driven LLM agent with Telegram integration\nImage:       python:3.12-alpine\nInstalled:   ");
    expect(JSON.parse(readFileSync(join(home.dir, "kits", "agent.json"), "utf8")).manifest.name).toBe("agent");
    expect((await home.ok(["kit", "uninstall", "agent"])).stderr).toBe('Kit "agent" uninstalled\n');
  });
  it("installs JSON manifests and rejects invalid ones naming the field", async () => {
    const good = join(home.dir, "famiglia.json");
    writeFileSync(good, JSON.stringify({ name: "famiglia", version: "1.0.0", description: "Famiglia agent kit", image: "ghcr.io/aegis/famiglia:1.0.0" }));
    expect((await home.ok(["kit", "install", good])).stderr).toBe("Kit famiglia v1.0.0 installed\n");
    const bad = join(home.dir, "bad.yaml");
    writeFileSync(bad, "name: broken\nversion: 1\n");
    const r = await home.run(["kit", "install", bad]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("version: expected string");
    expect(r.stderr).toContain("image: expected string");
    expect((await home.ok(["kit", "list"])).stdout).not.toContain("broken");
    const missing = await home.run(["kit", "install", join(home.dir, "nope.yaml")]);
    expect(missing.stderr).toContain("no such file");
  });
});

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
      `Name:    myapp\nID:      ${id}\nImage:   python:3.12\nCommand: python -m http.server 80 --help\nPorts:   80, 443\nNetwork: default: public internet allowed; host, other VMs and private ranges refused\n\nReleases (0):\n`,
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

describe("egress policy of apps and kits", () => {
  it("app create stores --allow/--deny in order and app info shows them", async () => {
    await home.ok(["app", "create", "--name", "netapp", "--image", "x", "--allow", "api.example.com:443", "--deny", "*", "--allow", "host:11434", "--", "true"]);
    const info = (await home.ok(["app", "info", "netapp"])).stdout;
    expect(info).toContain("Network: allow api.example.com:443\n         deny *\n         allow host:11434\n         default: public internet allowed");
    const json = JSON.parse((await home.ok(["app", "info", "netapp", "--json"])).stdout) as { network: unknown };
    expect(json.network).toEqual({ mode: "default", rules: [{ action: "allow", target: "api.example.com:443" }, { action: "deny", target: "*" }, { action: "allow", target: "host:11434" }] });
    await home.ok(["app", "create", "--name", "offline-app", "--image", "x", "--no-network"]);
    expect((await home.ok(["app", "info", "offline-app"])).stdout).toContain("Network: none (--no-network: no route anywhere)\n");
    await home.ok(["app", "create", "--name", "plain-net", "--image", "x"]);
    expect(JSON.parse((await home.ok(["app", "info", "plain-net", "--json"])).stdout).network).toEqual({ mode: "default", rules: [] });
    for (const a of ["netapp", "offline-app", "plain-net"]) await home.ok(["app", "delete", a]);
  });
  it("app create refuses bad rules with run's exact messages and creates nothing", async () => {
    const cases = [["--allow", "10.0.0.0/99"], ["--deny", "host:80"], ["--no-network", "--allow", "example.com"], ["--allow", "example.com:0"]];
    for (const flags of cases) {
      const viaRun = await home.run(["run", ...flags, "--", "true"]);
      const viaApp = await home.run(["app", "create", "--name", "badnet", "--image", "x", ...flags, "--", "true"]);
      expect(viaApp.code).toBe(2);
      expect(viaRun.code).toBe(2);
      expect(viaApp.stderr).toBe(viaRun.stderr);
      expect(viaApp.stderr.length).toBeGreaterThan(20);
    }
    expect((await home.run(["app", "create", "--name", "badnet", "--image", "x", "--alow", "x.com"])).stderr).toContain("unknown flag --alow (did you mean --allow?)");
    expect((await home.ok(["app", "list", "--json"])).stdout).not.toContain("badnet");
  });
  it("kit install keeps a manifest's network policy, kit info shows it, and a bad rule names the field", async () => {
    const good = join(home.dir, "netkit.yaml");
    writeFileSync(good, "name: netkit\nversion: '1'\nimage: busybox\ninstance:\n  network:\n    rules:\n      - { action: allow, target: 'api.openai.com:443' }\n      - { action: deny, target: '*' }\n");
    await home.ok(["kit", "install", good]);
    expect((await home.ok(["kit", "info", "netkit"])).stdout).toContain("Network:     allow api.openai.com:443\n             deny *\n             default: ");
    const stored = JSON.parse(readFileSync(join(home.dir, "kits", "netkit.json"), "utf8")) as { manifest: { instance: { network: unknown } } };
    expect(stored.manifest.instance.network).toEqual({ mode: "default", rules: [{ action: "allow", target: "api.openai.com:443" }, { action: "deny", target: "*" }] });
    const bad = join(home.dir, "badnet.yaml");
    writeFileSync(bad, "name: badnetkit\nversion: '1'\nimage: busybox\ninstance:\n  network:\n    mode: none\n    rules: [{ action: allow, target: example.com }]\n");
    const r = await home.run(["kit", "install", bad]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("instance.network");
    expect(r.stderr).toContain("mode none takes no rules");
    expect((await home.ok(["kit", "list"])).stdout).not.toContain("badnetkit");
    await home.ok(["kit", "uninstall", "netkit"]);
  });
});

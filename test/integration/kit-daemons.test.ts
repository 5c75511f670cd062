import { describe, expect, it } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { FakeTelegram } from "../fakes/telegram.ts";
import { aegisBin, TestHome } from "../helpers/aegis.ts";

async function daemons(home: TestHome) {
  return JSON.parse((await home.ok(["status", "--json"])).stdout).daemons as { name: string; state: string; pid: number | null; restarts: number }[];
}

describe("kit daemons", () => {
  it("start with aegis up once their config exists, restart after a crash, stop with aegis down, and honour --no-daemons", async () => {
    await using home = new TestHome();
    const manifest = join(home.dir, "k.yaml");
    writeFileSync(
      manifest,
      "name: testkit\nversion: '1'\nimage: alpine\ndaemons:\n  - name: test-sleeper\n    command: [sh, -c, 'echo sleeper up; exec sleep 1000']\n    requires_config: sleeper.json\n",
    );
    await home.ok(["up"]);
    await home.ok(["kit", "install", manifest]);
    await home.ok(["down"]);
    const noConfig = await home.ok(["up"]);
    expect(noConfig.stderr).toContain(`test-sleeper: no config (create ${home.dir}/sleeper.json to enable)`);
    await home.ok(["down"]);

    writeFileSync(join(home.dir, "sleeper.json"), "{}");
    const started = await home.ok(["up"]);
    expect(started.stderr).toContain("test-sleeper: started (testkit kit)");
    const [first] = await daemons(home);
    expect(first).toMatchObject({ name: "test-sleeper", state: "running", restarts: 0 });
    process.kill(first!.pid!, "SIGKILL");
    const deadline = Date.now() + 10_000;
    let now = first!;
    while (Date.now() < deadline) {
      now = (await daemons(home))[0]!;
      if (now!.state === "running" && now!.pid !== first!.pid) break;
      await Bun.sleep(100);
    }
    expect(now).toMatchObject({ state: "running", restarts: 1 });
    expect((await home.ok(["status"])).stdout).toContain("test-sleeper: running");
    await home.ok(["down"]);
    expect(existsSync(`/proc/${now!.pid}`)).toBe(false);

    const skipped = await home.ok(["up", "--no-daemons"]);
    expect(skipped.stderr).toContain("test-sleeper: not started (--no-daemons)");
    expect((await daemons(home))[0]!.state).toBe("disabled");
  }, 60_000);
});

describe("the agent kit's gateway", () => {
  it("starts with aegis up once gateway.json exists, through its aegis-gateway role link, printing the spec's two lines", async () => {
    await using home = new TestHome();
    const tg = new FakeTelegram();
    using _tg = { [Symbol.dispose]: () => tg.stop() };
    // aegisd passes its environment on to kit daemons: the gateway talks to the local stand-in, never to Telegram.
    const env = { TELEGRAM_API_BASE: tg.baseUrl };
    await home.ok(["up"], { env });
    await home.ok(["kit", "install", join(import.meta.dir, "..", "..", "kits", "agent.yaml")]);
    await home.ok(["secret", "set", "TELEGRAM_BOT_TOKEN", "-"], { stdin: tg.token });
    await home.ok(["down"]);
    writeFileSync(join(home.dir, "gateway.json"), JSON.stringify({ telegram: { bot_token_secret: "TELEGRAM_BOT_TOKEN", instance: "my-agent", allowed_chats: ["*"], poll_timeout: 1 } }));

    const up = await home.ok(["up"], { env });
    // The gateway line is agent-kit.md's; the daemon line is cli-reference.md's ("aegisd started (pid N)"),
    // which agent-kit.md abbreviates as "aegisd: started".
    expect(up.stderr).toMatch(/^aegisd started \(pid \d+\)\naegis-gateway: started \(agent kit\)\n$/);
    const gw = (await daemons(home)).find((d) => d.name === "aegis-gateway");
    expect(gw).toMatchObject({ state: "running", restarts: 0 });
    // The real gateway, run as its role link beside bin/aegis (argv[0] picks the role).
    const argv0 = readFileSync(`/proc/${gw!.pid}/cmdline`, "utf8").split("\0")[0]!;
    expect(argv0).toBe(join(dirname(aegisBin()), "aegis-gateway"));
    // It resolved the bot token through aegisd's socket and polls the Bot API with it.
    const deadline = Date.now() + 15_000;
    while (tg.callsOf("getUpdates").length === 0 && Date.now() < deadline) await Bun.sleep(100);
    expect(tg.callsOf("getUpdates").length).toBeGreaterThan(0);

    await home.ok(["down"]);
    expect(existsSync(`/proc/${gw!.pid}`)).toBe(false);
  }, 60_000);
});

describe("the secret value endpoint", () => {
  it("answers on aegisd's socket only, never on the router's TCP port", async () => {
    await using home = new TestHome();
    await home.ok(["up"]);
    await home.ok(["secret", "set", "CANARY", "-"], { stdin: "sk-canary-value-77" });
    const onSocket = await fetch("http://aegis/v1/secrets/CANARY", { unix: join(home.dir, "aegisd.sock") });
    expect(await onSocket.json()).toEqual({ name: "CANARY", value: "sk-canary-value-77" });
    const router = JSON.parse((await home.ok(["status", "--json"])).stdout).router_url as string;
    expect(router).toMatch(/^http:\/\/(127\.0\.0\.1|localhost):\d+$/);
    for (const path of ["/v1/secrets/CANARY", "/v1/secrets", "/aegis/v1/secrets/CANARY"]) {
      const res = await fetch(`${router}${path}`);
      const body = await res.text();
      expect(res.status).toBe(404);
      expect(body).not.toContain("sk-canary-value-77");
    }
    await home.ok(["down"]);
  }, 60_000);
});

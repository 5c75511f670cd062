/**
 * Secrets kept out of the guest (issue 12, item 3), end to end with one
 * real VM (TCG) under a real aegisd (root: network namespace + nftables):
 * the agent kit with a substituted OPENAI_API_KEY and the default base URL
 * https://api.openai.com/v1. Nothing leaves the machine:
 * - the VM's DNS resolver asks a DNS stand-in on 127.0.0.1 (AEGIS_DNS_UPSTREAM),
 *   which answers api.openai.com with 198.18.0.20 (blackholed on the host
 *   for the test, so a packet that escaped the DNAT would go nowhere);
 * - the guest's TLS to that address is DNATed to aegisd's egress proxy, which
 *   re-originates to the OpenAI stand-in on 127.0.0.1 serving a certificate
 *   for api.openai.com from a test CA (the documented test-only knobs
 *   AEGIS_EGRESS_CONNECT and AEGIS_EGRESS_EXTRA_CA);
 * - a plain-HTTP header echo on the host's loopback (`--allow host:PORT`)
 *   plays "another host".
 * The agent (Bun's fetch) must trust the injected CA for any of it to work.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import dnsPacket from "dns-packet";
import { EgressCa } from "../../src/vmm/network/egress-ca.ts";
import { FakeOpenAI } from "../fakes/openai.ts";
import { repoRoot, TestHome } from "../helpers/aegis.ts";
import { busyboxLayer, makeImage } from "../helpers/oci-build.ts";
import { pushImage } from "../helpers/oci-push.ts";
import { startRegistry, type TestRegistry } from "../helpers/registry.ts";

const T = 240_000;
const REAL_KEY = "sk-e2e-real-key-7f3a";
const FAKE_ADDR = "198.18.0.20";

let reg: TestRegistry;
let home: TestHome;
let openai: FakeOpenAI;
let dns: Bun.udp.Socket<"buffer">;
let echo: ReturnType<typeof Bun.serve>;
const echoed: Record<string, string>[] = [];
let dir: string;
let env: Record<string, string>;
let sock: string;

function sh(cmd: string[]): void {
  const r = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")}: ${r.stderr.toString()}`);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "aegis-egress-e2e-"));
  // The stand-in's certificate, from a CA only this test (and aegisd, through AEGIS_EGRESS_EXTRA_CA) trusts.
  const testCa = EgressCa.loadOrCreate(join(dir, "test-ca"));
  writeFileSync(join(dir, "test-ca.pem"), testCa.certPem);
  openai = new FakeOpenAI({ apiKey: REAL_KEY, tls: testCa.issue("api.openai.com") });
  echo = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: (req) => {
      echoed.push(Object.fromEntries(req.headers));
      return new Response("ECHOED\n");
    },
  });
  dns = await Bun.udpSocket({
    hostname: "127.0.0.1",
    socket: {
      data: (s, buf, port, addr) => {
        const q = dnsPacket.decode(buf);
        const question = q.questions?.[0];
        const known = question?.name.toLowerCase() === "api.openai.com";
        const answers = known && question?.type === "A" ? [{ type: "A" as const, name: question.name, ttl: 60, data: FAKE_ADDR }] : [];
        s.send(dnsPacket.encode({ id: q.id, type: "response", flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | (known ? 0 : 3), questions: q.questions, answers }), port, addr);
      },
    },
  });
  sh(["ip", "route", "replace", "blackhole", `${FAKE_ADDR}/32`]);
  reg = await startRegistry();
  await pushImage({ base: reg.base, repo: "e2e/egress-base" }, makeImage([await busyboxLayer()], { env: ["PATH=/bin:/sbin"] }), "v1");
  env = {
    AEGIS_DNS_UPSTREAM: `127.0.0.1:${dns.port}`,
    AEGIS_EGRESS_CONNECT: `api.openai.com=127.0.0.1:${openai.port}`,
    AEGIS_EGRESS_EXTRA_CA: join(dir, "test-ca.pem"),
    // One cold boot per instance (no template VM first), with room for a loaded machine.
    AEGIS_TEMPLATES: "0",
    // Idle snapshots as one whole stream (snapshot.raw), which the last test turns into the legacy zstd one.
    AEGIS_SNAPSHOT_SPLIT: "0",
    AEGIS_BOOT_TIMEOUT_MS: "90000",
  };
  home = new TestHome();
  sock = join(home.dir, "aegisd.sock");
  await home.ok(["up"], { env });
  await home.ok(["kit", "install", join(repoRoot, "kits/agent.yaml")]);
  await home.ok(["secret", "set", "OPENAI_API_KEY", "-"], { stdin: `${REAL_KEY}\n` });
}, T);

afterAll(async () => {
  await home?.[Symbol.asyncDispose]();
  await reg?.[Symbol.asyncDispose]();
  openai?.stop();
  echo?.stop(true);
  dns?.close();
  Bun.spawnSync(["ip", "route", "del", "blackhole", `${FAKE_ADDR}/32`], { stderr: "ignore" });
  if (dir) rmSync(dir, { recursive: true, force: true });
});

type Frame = { type: string; seq: number; reply_to?: string; payload: { text?: string; message?: string } };

/** Send a user message over the tether and collect the frames answering it, up to its `assistant.done` or `error`. */
async function ask(instance: string, text: string): Promise<Frame[]> {
  const res = await fetch(`http://aegis/v1/instances/${instance}/tether`, {
    unix: sock,
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ v: 1, type: "user.message", session: { channel: "test", id: "1" }, payload: { text } }),
  });
  if (res.status !== 202) throw new Error(`POST tether: ${res.status} ${await res.text()}`);
  const { msg_id, seq } = (await res.json()) as { msg_id: string; seq: number };
  const stream = await fetch(`http://aegis/v1/instances/${instance}/tether/stream?after_seq=${seq}`, { unix: sock, signal: AbortSignal.timeout(150_000) });
  const reader = stream.body!.getReader();
  const dec = new TextDecoder();
  const out: Frame[] = [];
  let buf = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`tether stream ended early: ${JSON.stringify(out)}`);
      buf += dec.decode(value, { stream: true });
      const lines = buf.split("\n");
      buf = lines.pop()!;
      for (const l of lines.filter(Boolean)) {
        const f = JSON.parse(l) as Frame;
        if (f.reply_to !== msg_id) continue;
        out.push(f);
        if (f.type === "assistant.done") return out;
      }
    }
  } finally {
    await reader.cancel();
  }
}

const answerText = (frames: Frame[]) => frames.filter((f) => f.type === "assistant.delta").map((f) => f.payload.text).join("");

async function info(name: string): Promise<{ id: string; state: string }> {
  return JSON.parse((await home.ok(["instance", "info", name, "--json"])).stdout);
}

describe("secrets kept out of the guest", () => {
  it("gives the agent only a placeholder; the proxy sends the real key to api.openai.com only", async () => {
    const echoPort = echo.port!;
    await home.ok(
      ["instance", "start", "--kit", "agent", "--name", "agent", "--image", `${reg.host}/e2e/egress-base:v1`, "--secret", "OPENAI_API_KEY", "--allow", `host:${echoPort}`, "--pause-after", "0"],
      { env },
    );
    const frames = await ask("agent", "hello through the proxy");
    const errors = frames.filter((f) => f.type === "error");
    expect(JSON.stringify(errors)).toBe("[]");
    expect(answerText(frames)).toContain("hello through the proxy");
    // The stand-in (api.openai.com over TLS) saw the real key.
    expect(openai.requests.at(-1)!.headers.authorization).toBe(`Bearer ${REAL_KEY}`);

    // The running agent's environment, and an exec's, hold only the placeholder.
    const agentEnv = (await home.ok(["exec", "agent", "--", "sh", "-c", 'for p in /proc/[0-9]*; do [ "$(cat $p/comm)" = aegis-agent ] && tr "\\0" "\\n" < $p/environ; done; true'])).stdout;
    const placeholder = /^OPENAI_API_KEY=(AEGIS_SECRET_[0-9a-f]{32})$/m.exec(agentEnv)?.[1];
    expect(placeholder).toBeDefined();
    expect(agentEnv).toContain("NODE_EXTRA_CA_CERTS=/etc/ssl/certs/aegis-egress-ca.pem");
    expect(agentEnv).toContain("SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt");
    const execEnv = (await home.ok(["exec", "agent", "--", "busybox", "env"])).stdout;
    expect(execEnv).toContain(`OPENAI_API_KEY=${placeholder}`);
    expect(`${agentEnv}${execEnv}`).not.toContain(REAL_KEY);

    // The CA is in the guest's bundle (the certificate only, never a key).
    const bundle = (await home.ok(["exec", "agent", "--", "busybox", "cat", "/etc/ssl/certs/ca-certificates.crt", "/etc/ssl/certs/aegis-egress-ca.pem"])).stdout;
    expect(bundle).toContain(EgressCa.loadOrCreate(home.dir).certPem.trim());
    expect(bundle).not.toContain("PRIVATE KEY");

    // To any other host, the placeholder goes out as it is.
    const other = await home.ok(["exec", "agent", "--", "sh", "-c", `printf 'GET / HTTP/1.0\\r\\nAuthorization: Bearer %s\\r\\n\\r\\n' "$OPENAI_API_KEY" | busybox nc -w 5 10.0.2.2 ${echoPort}`]);
    expect(other.stdout).toContain("ECHOED");
    expect(echoed.at(-1)!.authorization).toBe(`Bearer ${placeholder}`);
  }, T);

  it("memory-snapshots an instance whose secrets are all substituted, and substitutes again after the restore", async () => {
    await home.ok(["instance", "stop", "agent"]);
    await home.ok(["instance", "delete", "agent"]);
    await home.ok(
      ["instance", "start", "--kit", "agent", "--name", "snap", "--image", `${reg.host}/e2e/egress-base:v1`, "--secret", "OPENAI_API_KEY", "--pause-after", "1", "--stop-after", "1"],
      { env },
    );
    const id = (await info("snap")).id;
    const deadline = Date.now() + 120_000;
    while ((await info("snap")).state !== "stopped" && Date.now() < deadline) await Bun.sleep(1000);
    expect((await info("snap")).state).toBe("stopped");
    const raw = join(home.dir, "instances", id, "snapshot.raw");
    expect(existsSync(raw)).toBe(true);
    // Made legacy, as an older aegisd left it (zstd, `snapshot.zst`): it must still restore, not cold boot.
    const zst = join(home.dir, "instances", id, "snapshot.zst");
    const z = Bun.spawnSync(["zstd", "-q", "-1", "--rm", raw, "-o", zst], { stderr: "pipe" });
    expect(z.exitCode).toBe(0);
    const meta = JSON.parse(readFileSync(`${raw}.json`, "utf8")) as { bytes: number };
    writeFileSync(`${zst}.json`, JSON.stringify({ ...meta, bytes: statSync(zst).size }));
    rmSync(`${raw}.json`);
    const restores = () => readFileSync(join(home.dir, "data", "aegisd.log"), "utf8").split('"msg":"instance restored"').length;
    const restoredBefore = restores();
    const before = openai.requests.length;
    const frames = await ask("snap", "after the restore");
    expect(answerText(frames)).toContain("after the restore");
    expect(openai.requests.length).toBe(before + 1);
    expect(openai.requests.at(-1)!.headers.authorization).toBe(`Bearer ${REAL_KEY}`);
    expect(restores()).toBe(restoredBefore + 1);
    expect(existsSync(zst)).toBe(false); // consumed by the wake
  }, T);
});

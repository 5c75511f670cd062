/**
 * The Agent Kit's gateway across SIGKILLs of aegisd (live restore, issue 17):
 * the real aegisd supervises the real `aegis-gateway` polling the Telegram
 * stand-in (test/fakes/telegram.ts) while messages keep arriving; aegisd is
 * killed twice and started again, the second time just after the gateway
 * crashed and aegisd restarted it. The gateway a killed aegisd leaves behind
 * is stopped (and gone) before the new aegisd starts its own, so one
 * gateway polls at a time; and every Telegram update reaches the registry
 * exactly once, in order (the tether ingress frames, by msg_id and seq), and
 * is confirmed to Telegram. No VM is involved: aegisd runs without a backend
 * (PATH has no QEMU), so the agent instance exists but never boots; the
 * frames wait in the registry for it.
 */
import { expect, it } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { FakeTelegram } from "../fakes/telegram.ts";
import { TestHome } from "../helpers/aegis.ts";

const CHAT = 777;

async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(50);
  }
}

const alive = (pid: number) => {
  try {
    return !readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.startsWith("Z");
  } catch {
    return false;
  }
};

it("keeps every Telegram update, once and in order, and one gateway, across two SIGKILLs of aegisd", async () => {
  await using home = new TestHome();
  const tg = new FakeTelegram();
  using _tg = { [Symbol.dispose]: () => tg.stop() };
  // No QEMU on PATH: no VM backend (the instance's frames are only stored); the gateway talks to the stand-in.
  const env = { TELEGRAM_API_BASE: tg.baseUrl, PATH: "/nonexistent" };
  await home.ok(["up"], { env });
  await home.ok(["kit", "install", join(import.meta.dir, "..", "..", "kits", "agent.yaml")], { env });
  await home.ok(["secret", "set", "TELEGRAM_BOT_TOKEN", "-"], { stdin: tg.token, env });
  const start = await home.run(["instance", "start", "--name", "my-agent", "--", "sleep", "1000"], { env });
  expect(start.stderr).toContain("no VM backend is available");
  await home.ok(["down"], { env });
  writeFileSync(join(home.dir, "gateway.json"), JSON.stringify({ telegram: { bot_token_secret: "TELEGRAM_BOT_TOKEN", instance: "my-agent", allowed_chats: ["*"], poll_timeout: 1 } }));
  await home.ok(["up"], { env });

  const gatewayPid = async () => (JSON.parse((await home.ok(["status", "--json"], { env })).stdout).daemons as { name: string; pid: number | null; state: string }[]).find((d) => d.name === "aegis-gateway");
  const daemonPid = () => Number(readFileSync(join(home.dir, "data", "aegisd.pid"), "utf8").trim());
  const gateways: number[] = [];
  await until(async () => (await gatewayPid())?.state === "running", "the gateway to run");
  gateways.push((await gatewayPid())!.pid!);

  const messageIds: number[] = [];
  const reapedPids: number[] = [];
  for (let i = 1; i <= 12; i++) {
    messageIds.push(tg.pushMessage({ chatId: CHAT, text: `message ${i}` }));
    await Bun.sleep(150);
    if (i === 8) {
      // The gateway crashes and aegisd restarts it (backoff 1 s): the next aegisd must know this new pid
      // too (only the restart, not a pid file written at the first start, tells it).
      const crashed = gateways.at(-1)!;
      process.kill(crashed, "SIGTERM");
      await until(async () => {
        const g = await gatewayPid();
        return g?.state === "running" && g.pid !== crashed;
      }, "the crashed gateway to be restarted");
      expect(alive(crashed)).toBe(false);
      gateways.push((await gatewayPid())!.pid!);
    }
    if (i === 4 || i === 8) {
      const reapedGateway = gateways.at(-1)!;
      reapedPids.push(reapedGateway);
      process.kill(daemonPid(), "SIGKILL");
      // More messages while no aegisd runs: the old gateway still polls and retries its post.
      messageIds.push(tg.pushMessage({ chatId: CHAT, text: `message ${i} (aegisd away)` }));
      await Bun.sleep(400);
      await home.ok(["up"], { env });
      await until(async () => (await gatewayPid())?.state === "running", "the new gateway to run");
      const now = (await gatewayPid())!.pid!;
      expect(now).not.toBe(gateways.at(-1));
      // The previous gateway was stopped before this one started: never two polling the bot.
      expect(alive(gateways.at(-1)!)).toBe(false);
      gateways.push(now);
    }
  }

  const sql = (q: string) => Bun.spawnSync(["sqlite3", join(home.dir, "data", "aegis.db"), q]).stdout.toString().trim();
  const expected = messageIds.map((id) => `tg-${CHAT}-${id}`);
  await until(() => sql("SELECT COUNT(*) FROM tether_frames WHERE direction = 'ingress'") === String(expected.length), `${expected.length} ingress frames`);
  await Bun.sleep(1500); // a duplicate would show up by now
  expect(sql("SELECT msg_id FROM tether_frames WHERE direction = 'ingress' ORDER BY seq").split("\n")).toEqual(expected);
  const seqs = sql("SELECT seq FROM tether_frames WHERE direction = 'ingress' ORDER BY seq").split("\n").map(Number);
  expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
  await until(() => tg.pending === 0, "every update to be confirmed to Telegram");
  // Each new aegisd stopped the old gateway and then started its own.
  const log = readFileSync(join(home.dir, "data", "aegisd.log"), "utf8").split("\n");
  const reaped = log.flatMap((l, i) => (l.includes("stopped a kit daemon left by a previous aegisd") ? [i] : []));
  // The gateway each killed aegisd ran (the restarted one the second time) is the one the next aegisd stopped.
  expect(reaped.map((i) => (JSON.parse(log[i]!) as { pid: number }).pid)).toEqual(reapedPids);
  const started = (l: string) => l.includes('"kit daemon started"') && l.includes("aegis-gateway");
  for (const i of reaped) {
    // No gateway started between the reaped one's own start and its end (by pid: "aegisd started"
    // is logged while the reap runs, so it is no boundary): never two gateways at once.
    const { pid } = JSON.parse(log[i]!) as { pid: number };
    const lastStart = log.findLastIndex((l, j) => j < i && started(l));
    expect(lastStart).toBeGreaterThan(-1);
    expect((JSON.parse(log[lastStart]!) as { pid: number }).pid).toBe(pid);
    const next = log.findIndex((l, j) => j > i && started(l));
    expect(next).toBeGreaterThan(i);
  }
  for (const pid of gateways.slice(0, -1)) expect(alive(pid)).toBe(false);
  expect(sql("PRAGMA integrity_check")).toBe("ok");
}, 90_000);

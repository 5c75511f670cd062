/**
 * bench/tether.ts: message -> first `assistant.delta` and -> `assistant.done`
 * for an agent instance that is running, paused and stopped (snapshotted by
 * the idle policy), against a fake OpenAI that answers at once, next to the
 * plain VM wake of the same kind measured in the same run (`aegis instance
 * resume` of a paused instance, `aegis instance start` of a stopped one).
 *
 * The agent runs in the base rootfs (the harness injects `aegis-agent`), and
 * reaches the fake through QEMU's user network at 10.0.2.2.
 * Prints a table and writes bench/results/tether.json.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FakeOpenAI } from "../test/fakes/openai.ts";
import { report, repoRoot, type Row, stats } from "./_lib.ts";

const RUNS = 3;

async function aegis(env: Record<string, string>, ...args: string[]): Promise<string> {
  const p = Bun.spawn([join(repoRoot, "bin", "aegis"), ...args], { env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`aegis ${args.join(" ")} exited ${code}: ${err}`);
  return out;
}

async function state(env: Record<string, string>): Promise<{ state: string; has_snapshot: boolean }> {
  return JSON.parse(await aegis(env, "instance", "info", "agent", "--json"));
}

async function waitFor(env: Record<string, string>, want: string, snapshot?: boolean): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const s = await state(env);
    if (s.state === want && (snapshot === undefined || s.has_snapshot === snapshot)) return;
    await Bun.sleep(200);
  }
  throw new Error(`agent did not reach ${want}`);
}

/** Post a message and time the first delta and the done frame on the stream. */
async function roundTrip(socket: string, text: string): Promise<{ delta: number; done: number }> {
  const t0 = performance.now();
  const res = await fetch("http://aegis/v1/instances/agent/tether", {
    unix: socket,
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ v: 1, type: "user.message", session: { channel: "bench", id: "1" }, payload: { text } }),
  });
  const { seq } = (await res.json()) as { seq: number };
  const stream = await fetch(`http://aegis/v1/instances/agent/tether/stream?after_seq=${seq}`, { unix: socket, signal: AbortSignal.timeout(120_000) });
  const reader = stream.body!.getReader();
  let buf = "";
  let delta = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error("tether stream ended before assistant.done");
    buf += new TextDecoder().decode(value);
    const lines = buf.split("\n");
    buf = lines.pop()!;
    for (const l of lines) {
      if (!l) continue;
      const f = JSON.parse(l) as { type: string };
      if (f.type === "assistant.delta" && delta === 0) delta = performance.now() - t0;
      if (f.type === "assistant.done") {
        await reader.cancel();
        return { delta, done: performance.now() - t0 };
      }
    }
  }
}

async function main(): Promise<void> {
  const home = mkdtempSync(join(tmpdir(), "abt-"));
  const fake = new FakeOpenAI();
  const port = new URL(fake.baseUrl).port;
  const env = { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/root", AEGIS_HOME: home, AEGIS_ROUTER_PORT: "0" };
  const socket = join(home, "aegisd.sock");
  try {
    await aegis(env, "up");
    await aegis(env, "secret", "set", "OPENAI_API_KEY", "sk-bench");
    // No --secret: a secret-holding instance is never snapshotted; the key comes in by --env instead.
    await aegis(env, "instance", "start", "--name", "agent", "--pause-after", "0", "--env", `OPENAI_BASE_URL=http://10.0.2.2:${port}/v1`, "--env", "OPENAI_API_KEY=sk-bench", "--", "aegis-agent");
    await roundTrip(socket, "warm up");
    const running = { delta: [] as number[], done: [] as number[] };
    const paused = { delta: [] as number[], done: [] as number[] };
    const stopped = { delta: [] as number[], done: [] as number[] };
    const resume: number[] = [];
    const start: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const r = await roundTrip(socket, `running ${i}`);
      running.delta.push(r.delta);
      running.done.push(r.done);

      await aegis(env, "instance", "pause", "agent");
      const p = await roundTrip(socket, `paused ${i}`);
      paused.delta.push(p.delta);
      paused.done.push(p.done);
      await aegis(env, "instance", "pause", "agent");
      const t0 = performance.now();
      await aegis(env, "instance", "resume", "agent");
      resume.push(performance.now() - t0);

      // Stop with a memory snapshot, as the idle policy does.
      await fetch("http://aegis/v1/instances/agent/stop", { unix: socket, method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ snapshot: true }) });
      await waitFor(env, "stopped", true);
      const s = await roundTrip(socket, `stopped ${i}`);
      stopped.delta.push(s.delta);
      stopped.done.push(s.done);
      await fetch("http://aegis/v1/instances/agent/stop", { unix: socket, method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ snapshot: true }) });
      await waitFor(env, "stopped", true);
      const t1 = performance.now();
      await aegis(env, "instance", "start", "--name", "agent");
      start.push(performance.now() - t1);
    }
    const m = (xs: number[]) => stats(xs).median;
    const rows: Row[] = [
      { metric: "running: message -> first delta", value: m(running.delta), unit: "ms", better: "lower" },
      { metric: "running: message -> done", value: m(running.done), unit: "ms", better: "lower" },
      { metric: "paused: message -> first delta", value: m(paused.delta), unit: "ms", baseline: { name: "aegis instance resume (CLI)", value: m(resume) }, better: "lower" },
      { metric: "paused: message -> done", value: m(paused.done), unit: "ms", baseline: { name: "running: message -> done", value: m(running.done) }, better: "lower" },
      { metric: "stopped (snapshot): message -> first delta", value: m(stopped.delta), unit: "ms", baseline: { name: "aegis instance start from snapshot (CLI)", value: m(start) }, better: "lower" },
      { metric: "stopped (snapshot): message -> done", value: m(stopped.done), unit: "ms", baseline: { name: "running: message -> done", value: m(running.done) }, better: "lower" },
    ];
    report("tether", rows, { runs: RUNS, running, paused, stopped, resume_ms: resume, start_from_snapshot_ms: start });
  } finally {
    fake.stop();
    await aegis(env, "down");
    rmSync(home, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});

/**
 * Instances end to end under QEMU: lifecycle, exec, logs, the idle policy
 * with a memory snapshot, and a daemon killed with SIGKILL. One daemon for
 * the file, with short idle defaults only where a test asks for them.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { readFileSync } from "node:fs";
import { TestHome } from "../helpers/aegis.ts";

const T = 180_000;
let home: TestHome;
const env = { AEGIS_ROUTER_PORT: "0" };

beforeAll(async () => {
  home = new TestHome();
  await home.ok(["up"], { env });
}, T);
afterAll(async () => {
  await home[Symbol.asyncDispose]();
});

async function state(name: string): Promise<string> {
  return JSON.parse((await home.ok(["instance", "info", name, "--json"])).stdout).state;
}

async function waitState(name: string, want: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await state(name)) === want) return;
    await Bun.sleep(250);
  }
  throw new Error(`instance ${name} did not reach ${want} (now ${await state(name)})`);
}

const counter = ["sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; echo tick $i; sleep 0.2; done"];

describe("instance lifecycle", () => {
  it("starts, lists, execs, logs, pauses, resumes on exec, stops with its disk kept, restarts and deletes", async () => {
    const started = await home.ok(["instance", "start", "--name", "life", "--env", "GREETING=hi", "--pause-after", "0", "--", ...counter]);
    expect(started.stderr).toMatch(/^Instance life \(inst-[0-9a-f]+\) running\n$/);
    const list = (await home.ok(["instance", "list"])).stdout;
    expect(list).toMatch(/life\s+inst-[0-9a-f]+\s+running/);

    const exec = await home.run(["exec", "life", "--", "sh", "-c", "cat /tmp/count >/dev/null && echo persisted > /root/keep && echo out; echo err >&2; exit 5"]);
    expect([exec.stdout, exec.stderr, exec.code]).toEqual(["out\n", "err\n", 5]);
    // exec inherits the instance's environment; the request's --env wins.
    expect((await home.ok(["exec", "life", "--", "sh", "-c", "echo $GREETING"])).stdout).toBe("hi\n");
    expect((await home.ok(["exec", "life", "--env", "GREETING=yo", "--", "sh", "-c", "echo $GREETING"])).stdout).toBe("yo\n");
    await Bun.sleep(600);
    expect((await home.ok(["logs", "life", "--tail", "1"])).stdout).toMatch(/^tick \d+\n$/);

    expect((await home.ok(["instance", "pause", "life"])).stderr).toBe("Instance life paused\n");
    const before = Number((await home.ok(["exec", "life", "--", "cat", "/tmp/count"])).stdout);
    expect(await state("life")).toBe("running");
    await Bun.sleep(500);
    expect(Number((await home.ok(["exec", "life", "--", "cat", "/tmp/count"])).stdout)).toBeGreaterThan(before);

    expect((await home.ok(["instance", "stop", "life"])).stderr).toBe("Instance life stopped\n");
    // Like `docker run --name`: different flags for an existing instance are an error, and change nothing.
    const other = await home.run(["instance", "start", "--name", "life", "--memory", "1024", "--", "true"]);
    expect(other.code).toBe(1);
    expect(other.stderr).toContain('instance "life" already exists (stopped) with a different command, memory: command is ["sh","-c"');
    expect(other.stderr).toContain("memory is 512, not 1024");
    expect(other.stderr).toContain("'aegis instance start --name life' (no other flags)");
    expect(await state("life")).toBe("stopped");
    // The same flags (or none) start it as it is.
    await home.ok(["instance", "start", "--name", "life", "--env", "GREETING=hi", "--pause-after", "0"]);
    expect((await home.ok(["exec", "life", "--", "cat", "/root/keep"])).stdout).toBe("persisted\n");

    const dup = await home.run(["instance", "start", "--name", "life", "--", "true"]);
    expect(dup.code).toBe(1);
    expect(dup.stderr).toContain('instance "life" already exists and is running');
    expect((await home.ok(["instance", "delete", "life"])).stderr).toBe('Instance "life" deleted\n');
    expect((await home.run(["instance", "info", "life"])).code).toBe(1);
  }, T);

  it("pauses when idle, stops with a memory snapshot, and wakes on exec with the process's memory intact", async () => {
    // The shell keeps a random token in memory only: a restore brings the same token back with a count
    // at least the one seen before the stop; a cold boot would start a new token at 1 (however loaded the machine).
    const tokenCounter = ["sh", "-c", "t=$(cat /proc/sys/kernel/random/uuid); i=0; while true; do i=$((i+1)); echo $t $i > /tmp/count; sleep 0.2; done"];
    await home.ok(["instance", "start", "--name", "idler", "--pause-after", "2", "--stop-after", "2", "--", ...tokenCounter]);
    try {
      const read = async () => {
        const [token, n] = (await home.ok(["exec", "idler", "--", "sh", "-c", "until [ -s /tmp/count ]; do sleep 0.1; done; cat /tmp/count"])).stdout.trim().split(" ");
        return { token, n: Number(n) };
      };
      const before = await read();
      expect(before.token).toMatch(/^[0-9a-f-]{36}$/);
      await waitState("idler", "paused", 30_000);
      await waitState("idler", "stopped", 30_000);
      const info = JSON.parse((await home.ok(["instance", "info", "idler", "--json"])).stdout);
      expect(info.has_snapshot).toBe(true);
      const after = await read();
      expect(after.token).toBe(before.token);
      expect(after.n).toBeGreaterThanOrEqual(before.n);
      expect(JSON.parse((await home.ok(["instance", "info", "idler", "--json"])).stdout).has_snapshot).toBe(false);
    } finally {
      // Deleted whatever happened, so a failure here does not leave "idler" to the next test.
      await home.run(["instance", "delete", "idler"]);
    }
  }, T);

  it("keeps instances across a daemon killed with SIGKILL: the next daemon re-adopts the running VM (live restore)", async () => {
    await home.ok(["instance", "start", "--name", "survivor", "--pause-after", "0", "--", ...counter]);
    const before = Number((await home.ok(["exec", "survivor", "--", "cat", "/tmp/count"])).stdout);
    const pid = Number(readFileSync(`${home.dir}/data/aegisd.pid`, "utf8"));
    process.kill(pid, "SIGKILL");
    await Bun.sleep(200);
    await home.ok(["up"], { env });
    // Re-adopted, not stopped: the same VM runs on, its memory kept (the counter went on; a cold boot would restart it at 1).
    expect(await state("survivor")).toBe("running");
    const after = Number((await home.ok(["exec", "survivor", "--", "cat", "/tmp/count"])).stdout);
    expect(after).toBeGreaterThan(before);
    const r = await home.ok(["exec", "survivor", "--", "echo", "back"]);
    expect(r.stdout).toBe("back\n");
    await home.ok(["instance", "delete", "survivor"]);
  }, T);

  it("wakes a paused or stopped instance on a tether message and streams the guest's reply frames", async () => {
    // A stand-in agent: busybox nc on 127.0.0.1:7778 answering every frame line with assistant.done.
    const reply = '{"v":1,"type":"assistant.done","session":{"channel":"test","id":"1"},"payload":{"text":"pong"}}';
    const script = `printf '%s\\n' '#!/bin/sh' 'while read -r line; do echo got >> /tmp/frames; printf "%s\\n" '"'"'${reply}'"'"'; done' > /tmp/agent.sh; chmod +x /tmp/agent.sh; exec nc -ll -p 7778 -e /tmp/agent.sh`;
    await home.ok(["instance", "start", "--name", "echoer", "--pause-after", "0", "--", "sh", "-c", script]);
    const sock = `${home.dir}/aegisd.sock`;
    const post = (body: unknown) =>
      fetch("http://aegis/v1/instances/echoer/tether", { unix: sock, method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const message = { v: 1, type: "user.message", session: { channel: "test", id: "1" }, payload: { text: "Hello!" } };
    const streamUntil = async (afterSeq: number, count: number) => {
      const res = await fetch(`http://aegis/v1/instances/echoer/tether/stream?after_seq=${afterSeq}`, { unix: sock, signal: AbortSignal.timeout(90_000) });
      const frames: Record<string, unknown>[] = [];
      const reader = res.body!.getReader();
      let buf = "";
      while (frames.length < count) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += new TextDecoder().decode(value);
        const lines = buf.split("\n");
        buf = lines.pop()!;
        for (const l of lines) if (l) frames.push(JSON.parse(l));
      }
      await reader.cancel();
      return frames;
    };

    await home.ok(["instance", "pause", "echoer"]);
    const accepted = await post(message);
    expect(accepted.status).toBe(202);
    const { msg_id, seq } = (await accepted.json()) as { msg_id: string; seq: number };
    expect(msg_id.length).toBeGreaterThan(0);
    const [first] = await streamUntil(seq, 1);
    expect(first).toMatchObject({ type: "assistant.done", payload: { text: "pong" } });
    expect(first!.seq as number).toBeGreaterThan(seq);
    expect(await state("echoer")).toBe("running");

    await home.ok(["instance", "stop", "echoer"]);
    const again = (await (await post(message)).json()) as { seq: number };
    const [second] = await streamUntil(again.seq, 1);
    expect(second).toMatchObject({ type: "assistant.done" });

    const bad = await post({ ...message, type: "assistant.delta" });
    expect(bad.status).toBe(400);
    const unknown = await post({ ...message, type: "made.up" });
    expect(unknown.status).toBe(400);
    await home.ok(["instance", "delete", "echoer"]);
  }, T);

  it("serves through the router: serve mode, wake on request from paused and stopped, raw TCP forward, Ctrl+C cleanup", async () => {
    const httpd = ["sh", "-c", "mkdir -p /www && echo hello-from-guest > /www/index.html && exec httpd -f -p 8080 -h /www"];
    // Serve mode: the spec's three lines, then block until Ctrl+C.
    const { proc: serve, stderr: err } = await home.startServing(["run", "--expose", "8080", "--", ...httpd]);
    const url = /Serving on (http:\/\/127\.0\.0\.1:\d+)/.exec(err)![1]!;
    const id = /Instance: (inst-[0-9a-f]+)/.exec(err)![1]!;
    expect((await (await fetch(`${url}/index.html`)).text())).toBe("hello-from-guest\n");
    serve.kill("SIGINT");
    expect(await serve.exited).toBe(130);
    expect((await home.run(["instance", "info", id])).code).toBe(1);

    // Idle scale-to-zero and wake on connection; a raw TCP forward on a free public port.
    const publicPort = 20000 + Math.floor(Math.random() * 20000);
    await home.ok(["instance", "start", "--name", "web", "--expose", "8080", "--expose", `${publicPort}:8080`, "--pause-after", "2", "--stop-after", "3", "--", ...httpd]);
    const status = JSON.parse((await home.ok(["status", "--json"])).stdout);
    const base = `${status.router_url}/web`;
    expect(await (await fetch(`${base}/index.html`)).text()).toBe("hello-from-guest\n");
    expect(await (await fetch(`http://127.0.0.1:${publicPort}/index.html`)).text()).toBe("hello-from-guest\n");
    await waitState("web", "paused", 30_000);
    expect(await (await fetch(`${base}/index.html`)).text()).toBe("hello-from-guest\n");
    expect(await state("web")).toBe("running");
    await waitState("web", "stopped", 30_000);
    const woke = await fetch(`http://web.localhost:${new URL(status.router_url).port}/index.html`, { headers: { host: `web.localhost:${new URL(status.router_url).port}` } });
    expect(await woke.text()).toBe("hello-from-guest\n");
    expect(await state("web")).toBe("running");
    await home.ok(["instance", "delete", "web"]);
  }, T);

  it("serves both ports of the spec's run --expose 80 --expose 443, and deletes the instance on Ctrl+C", async () => {
    const two = ["sh", "-c", "mkdir -p /a /b && echo on-80 > /a/i && echo on-443 > /b/i && httpd -p 443 -h /b && exec httpd -f -p 80 -h /a"];
    const { proc: serve, stderr: err } = await home.startServing(["run", "--expose", "80", "--expose", "443", "--", ...two]);
    const url = /Serving on (http:\/\/127\.0\.0\.1:\d+)/.exec(err)![1]!;
    const id = /Instance: (inst-[0-9a-f]+)/.exec(err)![1]!;
    try {
      // The router serves the first exposed port; each guest port has its own forward on the host.
      expect(await (await fetch(`${url}/i`)).text()).toBe("on-80\n");
      const info = JSON.parse((await home.ok(["instance", "info", id, "--json"])).stdout) as { expose: { guest_port: number; host_port: number | null }[] };
      expect(info.expose.map((e) => e.guest_port)).toEqual([80, 443]);
      const by = (p: number) => info.expose.find((e) => e.guest_port === p)!.host_port!;
      expect(await (await fetch(`http://127.0.0.1:${by(80)}/i`)).text()).toBe("on-80\n");
      expect(await (await fetch(`http://127.0.0.1:${by(443)}/i`)).text()).toBe("on-443\n");
    } finally {
      serve.kill("SIGINT");
      expect(await serve.exited).toBe(130);
    }
    expect((await home.run(["instance", "info", id])).code).toBe(1);
  }, T);

  it("rejects bad instance requests without creating anything", async () => {
    for (const [args, message] of [
      [["instance", "start", "--expose", "99999", "--", "true"], 'invalid --expose value "99999"'],
      [["instance", "start", "--workspace", "../escape", "--", "true"], 'invalid workspace "../escape"'],
      [["instance", "start", "--kit", "nokit", "--", "true"], 'kit "nokit" is not installed'],
      [["instance", "start", "--pause-after", "soon", "--", "true"], 'invalid --pause-after value "soon"'],
      [["instance", "start"], "no command"],
      [["exec", "ghost", "--", "true"], 'instance "ghost" not found'],
    ] as [string[], string][]) {
      const r = await home.run(args);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(message);
    }
    expect(JSON.parse((await home.ok(["instance", "list", "--json"])).stdout)).toEqual([]);
  }, T);
});

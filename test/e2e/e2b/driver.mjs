/**
 * Drives the real, unmodified e2b SDK (pinned in package.json) against an
 * aegisd, configured only by the variables `aegis e2b env` prints. Plain
 * JavaScript so that Bun and Node 20 run the very same file. Each mode
 * prints one `ok NAME` line per check that held (node:assert throws on the
 * first that does not, and the process exits non-zero), plus `id`/`host`
 * lines the e2e test (e2b.test.ts) reads.
 *
 *   create              two sandboxes at once (A pauses on timeout, B is killed)
 *   checks A B          commands, stdin, PTY, files, watch, uploads, list, metrics, auth
 *   lifecycle A B       pause + connect, a timeout that pauses, one that kills
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { AuthenticationError, CommandExitError, NotFoundError, Sandbox } from "e2b";

const [mode, idA, idB] = process.argv.slice(2);
const ok = (name) => console.log(`ok ${name}`);
const sha = (bytes) => createHash("sha256").update(bytes).digest("hex");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(what, fn, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(250);
  }
}

async function create() {
  const [a, b] = await Promise.all([
    Sandbox.create({ metadata: { suite: "e2b-e2e", who: "a" }, envs: { GREETING: "hello-a" }, timeoutMs: 900_000, lifecycle: { onTimeout: "pause" } }),
    // B carries E2B network options (mapped onto its Aegis egress policy; the e2e test reads it back).
    Sandbox.create("base", { metadata: { suite: "e2b-e2e", who: "b" }, envs: { GREETING: "hello-b" }, timeoutMs: 900_000, network: { allowOut: ["203.0.113.7"], denyOut: ["203.0.113.0/24"] } }),
  ]);
  assert.notEqual(a.sandboxId, b.sandboxId);
  console.log(`id ${a.sandboxId} ${b.sandboxId}`);
  ok("create two sandboxes at once");
}

async function checks() {
  const [a, b] = await Promise.all([Sandbox.connect(idA), Sandbox.connect(idB)]);
  const runtime = typeof Bun === "undefined" ? "node" : "bun";

  // Per-sandbox routing: the same path holds different files in each sandbox.
  await Promise.all([a.files.write(`/tmp/who-${runtime}`, `A-${runtime}`), b.files.write(`/tmp/who-${runtime}`, `B-${runtime}`)]);
  assert.equal(await a.files.read(`/tmp/who-${runtime}`), `A-${runtime}`);
  assert.equal(await b.files.read(`/tmp/who-${runtime}`), `B-${runtime}`);
  assert.equal((await a.commands.run("echo $GREETING")).stdout, "hello-a\n");
  assert.equal((await b.commands.run("echo $GREETING")).stdout, "hello-b\n");
  ok("per-sandbox routing of files and envs");

  // Streamed stdout and stderr, in several chunks.
  const outs = [];
  const errs = [];
  const r = await a.commands.run("for i in 1 2 3; do echo out$i; echo err$i >&2; sleep 0.3; done", { onStdout: (d) => outs.push(d), onStderr: (d) => errs.push(d), envs: { EXTRA: "x" } });
  assert.equal(r.exitCode, 0);
  assert.equal(r.stdout, "out1\nout2\nout3\n");
  assert.equal(r.stderr, "err1\nerr2\nerr3\n");
  assert.ok(outs.length >= 2 && errs.length >= 2, `output arrived in one piece: ${JSON.stringify(outs)}`);
  assert.equal(outs.join(""), r.stdout);
  assert.equal((await a.commands.run("echo $EXTRA", { envs: { EXTRA: "per-command" }, cwd: "/tmp" })).stdout, "per-command\n");
  assert.equal((await a.commands.run("pwd", { cwd: "/tmp" })).stdout, "/tmp\n");
  ok("commands stream stdout and stderr");

  await assert.rejects(a.commands.run("echo bad >&2; exit 7"), (err) => {
    assert.ok(err instanceof CommandExitError, `not a CommandExitError: ${err}`);
    assert.equal(err.exitCode, 7);
    assert.equal(err.stderr, "bad\n");
    return true;
  });
  ok("non-zero exit is a CommandExitError");

  // A background command, listed, killed.
  const bg = await a.commands.run("sleep 600", { background: true });
  assert.ok((await a.commands.list()).some((p) => p.pid === bg.pid), "background command not listed");
  assert.equal(await bg.kill(), true);
  await assert.rejects(bg.wait(), (err) => err instanceof CommandExitError);
  await until("the killed command to leave the list", async () => !(await a.commands.list()).some((p) => p.pid === bg.pid));
  assert.equal(await a.commands.kill(bg.pid), false);
  ok("background command killed");

  // Reconnect to a running command by pid.
  const slow = await a.commands.run("sleep 1; echo late", { background: true });
  const again = await a.commands.connect(slow.pid);
  assert.equal((await again.wait()).stdout.trim(), "late");
  ok("connect to a running command");

  // stdin.
  const cat = await a.commands.run("cat", { background: true, stdin: true });
  await cat.sendStdin("line one\n");
  await a.commands.sendStdin(cat.pid, "line two\n");
  await cat.closeStdin();
  assert.equal((await cat.wait()).stdout, "line one\nline two\n");
  ok("stdin");

  // A PTY session with a resize.
  let screen = "";
  const dec = new TextDecoder();
  const pty = await a.pty.create({ cols: 80, rows: 24, onData: (d) => (screen += dec.decode(d, { stream: true })) });
  await a.pty.sendInput(pty.pid, new TextEncoder().encode("stty size\n"));
  await until("the pty to report 24 80", () => screen.includes("24 80"));
  await a.pty.resize(pty.pid, { cols: 100, rows: 40 });
  await a.pty.sendInput(pty.pid, new TextEncoder().encode("stty size; exit\n"));
  await until("the pty to report 40 100", () => screen.includes("40 100"));
  await pty.wait();
  ok("pty with resize");

  // Files.
  const dir = `/tmp/files-${runtime}`;
  assert.equal(await a.files.makeDir(dir), true);
  assert.equal(await a.files.makeDir(dir), false);
  await a.files.write(`${dir}/one.txt`, "one");
  await a.files.write([{ path: `${dir}/two.txt`, data: "two" }, { path: `${dir}/sub/three.txt`, data: "three" }]);
  assert.deepEqual((await a.files.list(dir)).map((e) => e.name).sort(), ["one.txt", "sub", "two.txt"]);
  assert.deepEqual((await a.files.list(dir, { depth: 2 })).map((e) => e.path).sort(), [`${dir}/one.txt`, `${dir}/sub`, `${dir}/sub/three.txt`, `${dir}/two.txt`]);
  const info = await a.files.getInfo(`${dir}/one.txt`);
  assert.equal(info.type, "file");
  assert.equal(info.size, 3);
  assert.equal(await a.files.exists(`${dir}/one.txt`), true);
  await a.files.rename(`${dir}/one.txt`, `${dir}/uno.txt`);
  assert.equal(await a.files.exists(`${dir}/one.txt`), false);
  assert.equal(await a.files.read(`${dir}/uno.txt`), "one");
  await a.files.remove(`${dir}/uno.txt`);
  assert.equal(await a.files.exists(`${dir}/uno.txt`), false);
  await assert.rejects(a.files.read(`${dir}/missing`), (err) => err instanceof NotFoundError);
  ok("files write read list exists rename remove");

  // Watch.
  const events = [];
  const handle = await a.files.watchDir(dir, (e) => events.push(e));
  await a.files.write(`${dir}/watched.txt`, "w");
  await until("a watch event for watched.txt", () => events.some((e) => e.name === "watched.txt"));
  await handle.stop();
  const deep = [];
  const recursive = await a.files.watchDir(dir, (e) => deep.push(e), { recursive: true });
  await a.files.write(`${dir}/sub/deep.txt`, "d");
  await until("a recursive watch event for sub/deep.txt", () => deep.some((e) => e.name === "sub/deep.txt"));
  await recursive.stop();
  ok("watch a directory");

  // Uploads over 10 MB: multipart and octet-stream.
  const big = new Uint8Array(12 * 1024 * 1024);
  for (let i = 0; i < big.length; i++) big[i] = (i * 31 + (i >> 12)) & 0xff;
  await a.files.write(`/tmp/big-${runtime}.bin`, big.buffer);
  assert.equal(sha(await a.files.read(`/tmp/big-${runtime}.bin`, { format: "bytes" })), sha(big));
  await a.files.write(`/tmp/big2-${runtime}.bin`, new Blob([big]), { useOctetStream: true });
  assert.equal((await a.files.getInfo(`/tmp/big2-${runtime}.bin`)).size, big.length);
  assert.equal((await a.commands.run(`sha256sum /tmp/big2-${runtime}.bin`)).stdout.split(" ")[0], sha(big));
  ok("upload over 10 MB");

  // Sandbox.list: metadata and state filters, pagination.
  const mine = await Sandbox.list({ query: { metadata: { suite: "e2b-e2e" }, state: ["running"] } }).nextItems();
  assert.deepEqual(mine.map((s) => s.sandboxId).sort(), [idA, idB].sort());
  assert.deepEqual((await Sandbox.list({ query: { metadata: { who: "b" } } }).nextItems()).map((s) => s.sandboxId), [idB]);
  assert.deepEqual(await Sandbox.list({ query: { state: ["paused"], metadata: { suite: "e2b-e2e" } } }).nextItems(), []);
  const pager = Sandbox.list({ limit: 1, query: { metadata: { suite: "e2b-e2e" } } });
  const page1 = await pager.nextItems();
  assert.equal(page1.length, 1);
  assert.equal(pager.hasNext, true);
  const page2 = await pager.nextItems();
  assert.equal(page2.length, 1);
  assert.notEqual(page1[0].sandboxId, page2[0].sandboxId);
  assert.equal(pager.hasNext, false);
  ok("Sandbox.list with filters and pagination");

  // setTimeout and getInfo.
  await b.setTimeout(600_000);
  const end = (await b.getInfo()).endAt.getTime();
  assert.ok(Math.abs(end - (Date.now() + 600_000)) < 30_000, `endAt ${new Date(end).toISOString()}`);
  ok("setTimeout");

  const metrics = await a.getMetrics();
  assert.equal(metrics.length, 1);
  assert.ok(metrics[0].memTotal > 0 && metrics[0].cpuCount >= 1);
  ok("metrics");

  assert.equal(await a.isRunning(), true);

  // A wrong API key: refused, nothing created.
  const before = (await Sandbox.list().nextItems()).length;
  await assert.rejects(Sandbox.create({ apiKey: `e2b_${"0".repeat(40)}` }), (err) => err instanceof AuthenticationError);
  await assert.rejects(Sandbox.list({ apiKey: "e2b_wrong" }).nextItems(), (err) => err instanceof AuthenticationError);
  assert.equal((await Sandbox.list().nextItems()).length, before);
  ok("wrong API key refused");

  // The network options B was created with, reported back; changing them later is refused, not ignored.
  const infoB = await Sandbox.getInfo(idB);
  assert.deepEqual(infoB.network, { allowOut: ["203.0.113.7"], denyOut: ["203.0.113.0/24"], rules: undefined, egressProxy: undefined, allowPublicTraffic: undefined, maskRequestHost: undefined, httpsPorts: undefined });
  assert.equal(infoB.allowInternetAccess, true);
  assert.equal((await Sandbox.getInfo(idA)).network, undefined);
  await assert.rejects(b.updateNetwork({ allowOut: ["198.51.100.1"] }), (err) => /changing a running sandbox's network is not supported/.test(err.message));
  ok("network options kept");

  // getHost: a server in the sandbox, reached through the router (the test curls the host).
  await a.commands.run("mkdir -p /tmp/www && echo served-by-a > /tmp/www/index.html && (wget -q -O /dev/null http://127.0.0.1:8000/ || httpd -p 8000 -h /tmp/www)");
  console.log(`host ${a.getHost(8000)}`);
  ok("getHost");
}

async function lifecycle() {
  const a = await Sandbox.connect(idA);
  const b = await Sandbox.connect(idB);
  await b.files.write("/tmp/keep.txt", "kept");

  // An envd call wakes a paused sandbox (Aegis wakes on demand). A paused
  // sandbox does not age: its lifetime, passed while paused, starts afresh.
  await b.setTimeout(10_000);
  assert.equal(await b.pause(), true);
  assert.equal(await b.pause(), false);
  assert.equal((await Sandbox.getInfo(idB)).state, "paused");
  await sleep(11_000);
  assert.equal((await Sandbox.getInfo(idB)).state, "paused");
  assert.equal(await b.files.read("/tmp/keep.txt"), "kept");
  await sleep(1_500);
  const woken = await Sandbox.getInfo(idB);
  assert.equal(woken.state, "running");
  assert.ok(woken.endAt.getTime() > Date.now(), `endAt ${woken.endAt.toISOString()} is not after now`);
  await b.setTimeout(600_000);
  ok("envd wakes a paused sandbox");

  // Pause, then Sandbox.connect: the files are still there.
  assert.equal(await b.pause(), true);
  assert.equal((await Sandbox.getInfo(idB)).state, "paused");
  const b2 = await Sandbox.connect(idB);
  assert.equal((await Sandbox.getInfo(idB)).state, "running");
  assert.equal(await b2.files.read("/tmp/keep.txt"), "kept");
  ok("pause then connect keeps files");

  // A timeout that pauses (A was created with onTimeout: pause).
  await a.files.write("/tmp/keep-a.txt", "kept-a");
  await a.setTimeout(2_000);
  await until("sandbox A to pause on its timeout", async () => (await Sandbox.getInfo(idA)).state === "paused");
  const a2 = await Sandbox.connect(idA, { timeoutMs: 600_000 });
  assert.equal(await a2.files.read("/tmp/keep-a.txt"), "kept-a");
  ok("timeout pauses with autoPause");

  // A timeout that kills.
  await b2.setTimeout(2_000);
  await until("sandbox B to be killed by its timeout", async () => !(await Sandbox.list().nextItems()).some((s) => s.sandboxId === idB));
  await assert.rejects(Sandbox.getInfo(idB), (err) => err instanceof NotFoundError);
  ok("timeout kills");

  assert.equal(await Sandbox.kill(idA), true);
  assert.equal(await Sandbox.kill(idA), false);
  ok("kill");
}

const modes = { create, checks, lifecycle };
if (!modes[mode]) {
  console.error(`usage: driver.mjs create | checks A B | lifecycle A B`);
  process.exit(2);
}
await modes[mode]();

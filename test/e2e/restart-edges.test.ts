/**
 * What does not survive an aegisd crash, and must end clearly without
 * leaking a VM:
 *
 * - a task whose VM was still booting when aegisd was killed: the next aegisd
 *   kills that QEMU (recorded before it was used, never handed out) and fails
 *   the task; its `aegis run` reconnects and says why, exit code 1;
 * - an interactive task (`aegis run -i`): its session was the old daemon's
 *   connection, so the CLI says the session cannot be resumed, and the next
 *   aegisd stops the task (failed, its VM killed) instead of re-adopting it.
 *
 * - an `aegis exec` into an instance (a quiet `sleep`, and `cat` waiting on
 *   stdin): its client's stream went with the old daemon, so the aegisd that
 *   re-adopts the instance's VM ends both in the guest (SIGTERM, then SIGKILL
 *   after a grace), while the instance's main process runs on in the same VM.
 *
 * Also `aegis down`: a running instance is stopped with a memory snapshot (the
 * idle policy's stop) and its next wake resumes it.
 *
 * The daemon cold boots (AEGIS_TEMPLATES=0), so a boot lasts seconds and the
 * kill lands inside it. One VM at a time.
 */
import { afterAll, beforeAll, expect, it } from "bun:test";
import { readFileSync } from "node:fs";
import { aegisBin, TestHome } from "../helpers/aegis.ts";
import { qemuPids } from "../helpers/qemu-pids.ts";

let home: TestHome;
const env = { AEGIS_TEMPLATES: "0", AEGIS_BOOT_TIMEOUT_MS: "90000" };
const api = async (path: string) => (await fetch(`http://aegis/v1${path}`, { unix: `${home.dir}/aegisd.sock` } as RequestInit)).json() as Promise<any>;
const sql = (query: string) => Bun.spawnSync(["sqlite3", `${home.dir}/data/aegis.db`, query]).stdout.toString().trim();
const killDaemon = () => process.kill(Number(readFileSync(`${home.dir}/data/aegisd.pid`, "utf8").trim()), "SIGKILL");

function spawnCli(args: string[], stdin: "ignore" | "pipe" = "ignore") {
  const proc = Bun.spawn([aegisBin(), ...args], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root", AEGIS_HOME: home.dir },
    stdin,
    stdout: "pipe",
    stderr: "pipe",
  });
  const out = { stdout: "", stderr: "" };
  const drain = async (s: ReadableStream<Uint8Array>, key: "stdout" | "stderr") => {
    for await (const chunk of s) out[key] += new TextDecoder().decode(chunk);
  };
  const done = Promise.all([drain(proc.stdout as ReadableStream<Uint8Array>, "stdout"), drain(proc.stderr as ReadableStream<Uint8Array>, "stderr"), proc.exited]).then(([, , code]) => code);
  return { proc, out, done };
}

async function until(cond: () => boolean, what: string, ms = 120_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(20);
  }
}

beforeAll(async () => {
  home = new TestHome();
  await home.ok(["up"], { env });
}, 60_000);
afterAll(async () => {
  await home[Symbol.asyncDispose]();
});

it("a task still booting when aegisd is killed fails clearly, and its QEMU is killed by the next aegisd", async () => {
  const run = spawnCli(["run", "--", "echo", "never printed"]);
  // The QEMU is spawned and recorded, not yet handed out (ready = 0): the kill lands inside the boot.
  await until(() => sql("SELECT COUNT(*) FROM vms v JOIN tasks t ON t.id = v.id WHERE v.ready = 0 AND t.state = 'booting'") === "1", "a booting task's VM");
  const taskId = sql("SELECT id FROM tasks WHERE state = 'booting'");
  killDaemon();
  await Bun.sleep(300);
  expect(qemuPids(home.dir).length).toBe(1); // the VM outlived aegisd, as every VM does
  await home.ok(["up"], { env });
  const code = await run.done;
  expect(code).toBe(1);
  expect(run.out.stdout).toBe("");
  expect(run.out.stderr).toContain("aegis: aegisd restarted, reconnecting");
  expect(run.out.stderr).toContain(`aegis: task ${taskId} failed: aegisd restarted while the task's VM was booting; run it again`);
  const task = await api(`/tasks/${taskId}`);
  expect(task.state).toBe("failed");
  await until(() => qemuPids(home.dir).length === 0, "the booting VM to be killed", 15_000);
  expect(readFileSync(`${home.dir}/data/aegisd.log`, "utf8")).toContain("killed a task VM it could not re-adopt");
  expect(sql("SELECT COUNT(*) FROM vms")).toBe("0");
}, 180_000);

it("an interactive task ends with the killed daemon's connection: the CLI says so, the next aegisd stops the task and its VM", async () => {
  const run = spawnCli(["run", "-i", "--", "cat"], "pipe");
  const stdin = run.proc.stdin as import("bun").FileSink;
  stdin.write("hello\n");
  stdin.flush();
  await until(() => run.out.stdout.includes("hello\n"), "cat to echo");
  const before = qemuPids(home.dir);
  expect(before.length).toBe(1);
  killDaemon();
  const code = await run.done;
  expect(code).toBe(1);
  expect(run.out.stderr).toContain("aegisd went away during the interactive session");
  expect(run.out.stderr).toContain("cannot be resumed");
  await home.ok(["up"], { env });
  const [task] = (await api("/tasks?limit=1")).tasks;
  expect(task.state).toBe("failed");
  expect(task.error).toBe("aegisd restarted during the interactive session (-i/-t), which ends with its connection; the task was stopped");
  await until(() => qemuPids(home.dir).length === 0, "the interactive task's VM to be killed", 15_000);
  expect(sql("SELECT COUNT(*) FROM vms")).toBe("0");
  const integrity = sql("PRAGMA integrity_check");
  expect(integrity).toBe("ok");
}, 180_000);

it("aegis down stops a running instance as the idle policy does: with a memory snapshot, so its next wake resumes where it was", async () => {
  // Written whole by a rename, so a snapshot (or a read) never catches the file truncated and empty.
  const counter = ["sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > /tmp/n.new; mv /tmp/n.new /tmp/n; sleep 0.2; done"];
  await home.ok(["instance", "start", "--name", "keeper", "--pause-after", "0", "--", ...counter], { env });
  await Bun.sleep(1500);
  const before = Number((await home.ok(["exec", "keeper", "--", "cat", "/tmp/n"])).stdout);
  expect(before).toBeGreaterThan(2);
  const t0 = Date.now();
  await home.ok(["down"]);
  const downMs = Date.now() - t0;
  expect(qemuPids(home.dir)).toEqual([]);
  expect(readFileSync(`${home.dir}/data/aegisd.log`, "utf8")).toContain('"msg":"instance snapshotted"');
  await home.ok(["up"], { env });
  const info = JSON.parse((await home.ok(["instance", "info", "keeper", "--json"])).stdout);
  expect(info.state).toBe("stopped");
  expect(info.has_snapshot).toBe(true);
  // /tmp is tmpfs: only the restored RAM can hold a count this far along (a cold boot starts again at 1).
  const after = Number((await home.ok(["exec", "keeper", "--", "cat", "/tmp/n"])).stdout);
  expect(after).toBeGreaterThanOrEqual(before);
  expect(readFileSync(`${home.dir}/data/aegisd.log`, "utf8")).toContain('"msg":"instance restored"');
  process.stderr.write(`aegis down with one running instance (snapshot included): ${downMs} ms\n`);
  await home.ok(["instance", "delete", "keeper"]);
  await until(() => qemuPids(home.dir).length === 0, "no QEMU left", 15_000);
}, 180_000);

/** Command lines of the guest's processes, one a line (read from /proc: no `ps` applet needed). */
async function guestProcesses(name: string): Promise<string> {
  const r = await home.ok(["exec", name, "--", "sh", "-c", "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done"]);
  return r.stdout;
}

it("execs cut off by an aegisd SIGKILL are ended in the guest by the daemon that re-adopts it; the instance's main process runs on", async () => {
  await home.ok(["instance", "start", "--name", "orphans", "--pause-after", "0", "--", "sleep", "99999"], { env });
  const quiet = spawnCli(["exec", "orphans", "--", "sh", "-c", "sleep 1000"]);
  const cat = spawnCli(["exec", "-i", "orphans", "--", "cat"], "pipe");
  const deadline = Date.now() + 60_000;
  for (let ps = ""; !(ps.includes("sleep 1000") && /(^|\/)cat $/m.test(ps)); ps = await guestProcesses("orphans")) {
    if (Date.now() > deadline) throw new Error(`the execs never showed up in the guest:\n${ps}`);
    await Bun.sleep(200);
  }
  const vmBefore = qemuPids(home.dir);
  expect(vmBefore.length).toBe(1);
  killDaemon();
  // Both clients lose their stream with the daemon (what they print is the CLI's concern, tested elsewhere).
  await Promise.race([Promise.all([quiet.done, cat.done]), Bun.sleep(30_000).then(() => Promise.reject(new Error(`the exec clients did not end with their daemon: ${JSON.stringify([quiet.out, cat.out])}`)))]);
  await Bun.sleep(300);
  expect(qemuPids(home.dir)).toEqual(vmBefore); // nothing ended them yet: the VM runs on without a daemon
  await home.ok(["up"], { env });
  let ps = "";
  const gone = Date.now() + 30_000;
  for (ps = await guestProcesses("orphans"); ps.includes("sleep 1000") || /(^|\/)cat $/m.test(ps); ps = await guestProcesses("orphans")) {
    if (Date.now() > gone) throw new Error(`the orphaned execs still run in the guest after the restart:\n${ps}`);
    await Bun.sleep(300);
  }
  // Same VM (re-adopted, not cold booted), main process untouched, and the instance serves.
  expect(qemuPids(home.dir)).toEqual(vmBefore);
  expect(ps).toContain("sleep 99999");
  expect((await home.ok(["exec", "orphans", "--", "echo", "still serving"])).stdout).toBe("still serving\n");
  const info = JSON.parse((await home.ok(["instance", "info", "orphans", "--json"])).stdout);
  expect(info.state).toBe("running");
  const log = readFileSync(`${home.dir}/data/aegisd.log`, "utf8");
  const ended = log.split("\n").filter((l) => l.includes('"msg":"ended execs orphaned by the aegisd restart"'));
  expect(ended).toHaveLength(1);
  expect(JSON.parse(ended[0]!).count).toBe(2);
  await home.ok(["instance", "delete", "orphans"]);
  await until(() => qemuPids(home.dir).length === 0, "no QEMU left", 15_000);
}, 240_000);

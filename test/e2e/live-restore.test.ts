/**
 * Live restore end to end: aegisd is killed with SIGKILL while a task streams
 * numbered lines and an instance serves through the router; `aegis up`
 * starts a new daemon that re-adopts both VMs (same QEMU processes). The
 * task's `aegis run` reconnects, prints every line exactly once in order and
 * exits with the command's code; the instance keeps its memory (a counter in
 * the guest goes on) and serves again through the router on the same port.
 * Its network policy survives too (aegisd runs as root with nft and ip, so
 * the VM is isolated in its own namespace): after the restart a host
 * loopback server is still refused, its `--allow host:PORT` still reaches
 * the host, and its DNS still answers (the per-VM resolver and relays live
 * in aegisd and are rebuilt on adoption).
 */
import { afterAll, beforeAll, expect, it } from "bun:test";
import { readFileSync } from "node:fs";
import { createSocket, type Socket } from "node:dgram";
import dnsPacket from "dns-packet";
import { aegisBin, TestHome } from "../helpers/aegis.ts";
import { qemuPids } from "../helpers/qemu-pids.ts";
import { freePort } from "../helpers/free-port.ts";

let home: TestHome;
let routerPort = 0;

let dns: Socket;
let dnsPort = 0;
const hostServers: ReturnType<typeof Bun.serve>[] = [];
const DNS_NAME = "restore.test";
const DNS_ADDR = "198.18.7.7";

/** An upstream DNS server on host loopback answering DNS_NAME (the VM's resolver in aegisd forwards to it). */
async function startDns(): Promise<void> {
  dns = createSocket("udp4");
  dns.on("message", (msg, from) => {
    const q = dnsPacket.decode(msg);
    const question = q.questions?.[0];
    const answers = question && question.name === DNS_NAME && question.type === "A" ? [{ type: "A" as const, name: DNS_NAME, ttl: 60, data: DNS_ADDR }] : [];
    const reply = dnsPacket.encode({ id: q.id, type: "response", flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE, questions: q.questions, answers });
    dns.send(reply, from.port, from.address);
  });
  await new Promise<void>((resolve) => dns.bind(0, "127.0.0.1", resolve));
  dnsPort = dns.address().port;
}

function hostServer(name: string): number {
  const s = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response(`${name}\n`) });
  hostServers.push(s);
  return s.port!;
}

const env = () => ({ AEGIS_ROUTER_PORT: String(routerPort), AEGIS_DNS_UPSTREAM: `127.0.0.1:${dnsPort}` });

beforeAll(async () => {
  home = new TestHome();
  routerPort = await freePort();
  await startDns();
  await home.ok(["up"], { env: env() });
}, 60_000);
afterAll(async () => {
  await home[Symbol.asyncDispose]();
  for (const s of hostServers) s.stop(true);
  dns?.close();
});

it("a task and a served instance survive SIGKILL of aegisd: every line once, the exit code, the same VMs", async () => {
  // The instance: a counter in guest memory, served by httpd.
  const web = ["sh", "-c", "mkdir -p /www; (i=0; while true; do i=$((i+1)); echo $i > /www/c.tmp; mv /www/c.tmp /www/count; sleep 0.2; done) & exec httpd -f -p 8080 -h /www"];
  const refusedPort = hostServer("HOST-LOOPBACK");
  const allowedPort = hostServer("HOST-ALLOWED");
  await home.ok(["instance", "start", "--name", "web", "--expose", "8080", "--allow", `host:${allowedPort}`, "--", ...web], { env: env() });
  const count = async (): Promise<number> => {
    const res = await fetch(`http://127.0.0.1:${routerPort}/web/count`);
    expect(res.status).toBe(200);
    return Number((await res.text()).trim());
  };
  const before = await count();

  const run = Bun.spawn([aegisBin(), "run", "--", "sh", "-c", "for i in $(seq 40); do echo line $i; sleep 0.25; done; exit 7"], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root", AEGIS_HOME: home.dir },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  let stdout = "";
  const outDone = (async () => {
    for await (const chunk of run.stdout as ReadableStream<Uint8Array>) stdout += new TextDecoder().decode(chunk);
  })();
  const stderrDone = new Response(run.stderr).text();
  const deadline = Date.now() + 120_000;
  while (!stdout.includes("line 3\n")) {
    if (Date.now() > deadline) throw new Error(`the task never printed line 3: ${stdout}`);
    await Bun.sleep(50);
  }
  const vmsBefore = qemuPids(home.dir);
  expect(vmsBefore.length).toBe(2);

  const daemonPid = Number(readFileSync(`${home.dir}/data/aegisd.pid`, "utf8").trim());
  process.kill(daemonPid, "SIGKILL");
  await Bun.sleep(1000);
  // Both VMs ran on without a daemon.
  expect(qemuPids(home.dir)).toEqual(vmsBefore);
  const restartedAt = Date.now();
  await home.ok(["up"], { env: env() });
  const after = await count();
  const windowMs = Date.now() - restartedAt;
  // Same VM, memory kept: the guest's counter went on (a cold boot would restart it and change the QEMU pid).
  expect(after).toBeGreaterThan(before);
  expect(qemuPids(home.dir)).toContain(vmsBefore[0]!);

  // The adopted instance keeps its network policy and its DNS.
  const policy = [
    // busybox nc, as in network-policy.test.ts (the guest's busybox wget crashes here).
    `echo "refused=$(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 10.0.2.2 ${refusedPort} 2>&1 | tail -n 1)"`,
    `echo "allowed=$(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 10.0.2.2 ${allowedPort} 2>&1 | tail -n 1)"`,
    `echo "dns=$(nslookup -type=a ${DNS_NAME} 2>&1 | grep -c ${DNS_ADDR})"`,
  ].join("; ");
  const probed = await home.ok(["exec", "web", "--", "sh", "-c", policy], { env: env() });
  const got = Object.fromEntries(probed.stdout.trim().split("\n").map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
  expect(got.allowed).toBe("HOST-ALLOWED");
  expect(got.refused).toContain("nc: can't connect to remote host");
  expect(got.dns).toBe("1");
  expect(await count()).toBeGreaterThan(after);

  const code = await run.exited;
  await outDone;
  const stderr = await stderrDone;
  expect(code).toBe(7);
  expect(stdout).toBe(Array.from({ length: 40 }, (_, i) => `line ${i + 1}\n`).join(""));
  expect(stderr.split("aegis: aegisd restarted, reconnecting").length - 1).toBe(1);
  const log = readFileSync(`${home.dir}/data/aegisd.log`, "utf8");
  expect(log).toContain("task re-adopted");
  expect(log).toContain("instance re-adopted");
  process.stderr.write(`live restore: restart window (aegis up to first request served) ${windowMs} ms\n`);

  await home.ok(["instance", "delete", "web"], { env: env() });
  const gone = Date.now() + 15_000;
  while (qemuPids(home.dir).length > 0 && Date.now() < gone) await Bun.sleep(100);
  expect(qemuPids(home.dir)).toEqual([]);
  const integrity = Bun.spawnSync(["sqlite3", `${home.dir}/data/aegis.db`, "PRAGMA integrity_check"]);
  expect(integrity.exitCode).toBe(0);
  expect(integrity.stdout.toString().trim()).toBe("ok");
}, 300_000);

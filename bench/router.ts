/**
 * bench/router.ts: what the router costs against talking to the guest port directly.
 *
 * Three processes, so the client, the router and the "guest" do not share an
 * event loop: an upstream Bun.serve standing in for the guest port, a Router
 * (HTTP on one port, a raw TCP forward on another) pointing at it, and this
 * process as the client (Bun fetch with keep-alive).
 *
 * - requests/s of a small GET with 1 and 16 concurrent clients, and the p50
 *   latency with one client: router vs direct (and vs the raw TCP forward);
 * - throughput of a 512 MB streamed download: router vs direct (and TCP forward).
 *
 * Prints a table and writes bench/results/router.json.
 * Usage: bun bench/router.ts
 */
import { Router } from "../src/daemon/router/index.ts";
import { report, type Row, stats } from "./_lib.ts";

const REQUESTS = 5000;
const LATENCY_RUNS = 2000;
const BIG_MB = 512;
const CHUNK = new Uint8Array(1024 * 1024).fill(42);

/** Role "upstream": the stand-in guest port. Prints its port. */
function runUpstream(): void {
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    idleTimeout: 0,
    fetch(req) {
      if (new URL(req.url).pathname === "/big") {
        let sent = 0;
        return new Response(
          new ReadableStream({
            pull(c) {
              if (sent++ === BIG_MB) c.close();
              else c.enqueue(CHUNK);
            },
          }),
        );
      }
      return new Response("hello from the guest\n", { headers: { "content-type": "text/plain" } });
    },
  });
  console.log(JSON.stringify({ port: server.port }));
}

/** Role "router": a Router whose hooks always answer with the upstream. Prints its ports. */
async function runRouter(upstreamPort: number): Promise<void> {
  const addr = { host: "127.0.0.1", port: upstreamPort };
  const router = new Router(
    {
      servedInstances: () => [{ instanceId: "inst-bench", handle: "bench", guestPort: 8080 }],
      ensureReachable: async () => addr,
      activityStarted: () => {},
      activityEnded: () => {},
    },
    { httpPort: 0, log: (msg, fields) => console.error(msg, fields) },
  );
  await router.start();
  const tcpPort = await router.addTcpForward(0, { instanceId: "inst-bench", guestPort: 8080 });
  console.log(JSON.stringify({ port: router.httpPort, tcpPort }));
}

/** Spawn this file in `role` and read the JSON line it prints. */
async function spawnRole(role: string, arg = ""): Promise<{ proc: Bun.Subprocess; info: Record<string, number> }> {
  const proc = Bun.spawn([process.execPath, import.meta.path, role, arg], { stdout: "pipe", stderr: "inherit", stdin: "ignore" });
  const reader = (proc.stdout as ReadableStream<Uint8Array>).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { done, value } = await reader.read();
    if (done) throw new Error(`bench ${role} process exited before printing its port`);
    text += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  return { proc, info: JSON.parse(text) };
}

async function rps(url: string, concurrency: number): Promise<number> {
  let next = 0;
  const worker = async () => {
    while (next++ < REQUESTS) await (await fetch(url)).arrayBuffer();
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  return REQUESTS / ((performance.now() - t0) / 1000);
}

async function latencyP50(url: string): Promise<number> {
  const out: number[] = [];
  for (let i = 0; i < LATENCY_RUNS; i++) {
    const t0 = performance.now();
    await (await fetch(url)).arrayBuffer();
    out.push(performance.now() - t0);
  }
  return stats(out).median * 1000;
}

/** MB/s of downloading /big, best of 3. */
async function downloadMBps(url: string): Promise<number> {
  let best = 0;
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    let n = 0;
    for await (const part of (await fetch(url)).body!) n += part.length;
    if (n !== BIG_MB * CHUNK.length) throw new Error(`download from ${url} got ${n} bytes, expected ${BIG_MB * CHUNK.length}`);
    best = Math.max(best, BIG_MB / ((performance.now() - t0) / 1000));
  }
  return best;
}

async function main(): Promise<void> {
  const up = await spawnRole("upstream");
  const rt = await spawnRole("router", String(up.info.port));
  try {
    const direct = `http://127.0.0.1:${up.info.port}`;
    const routed = `http://127.0.0.1:${rt.info.port}`;
    const tcp = `http://127.0.0.1:${rt.info.tcpPort}`;
    const rows: Row[] = [];
    const extra: Record<string, number> = {};
    for (const c of [1, 16]) {
      for (const u of [direct, routed, tcp]) await rps(`${u}/`, c); // warm up pools and JIT
      const viaRouter = await rps(`${routed}/`, c);
      const viaDirect = await rps(`${direct}/`, c);
      const viaTcp = await rps(`${tcp}/`, c);
      rows.push({ metric: `GET small, ${c} client${c > 1 ? "s" : ""} (router)`, value: viaRouter, unit: "req/s", baseline: { name: "direct", value: viaDirect }, better: "higher" });
      rows.push({ metric: `GET small, ${c} client${c > 1 ? "s" : ""} (TCP forward)`, value: viaTcp, unit: "req/s", baseline: { name: "direct", value: viaDirect }, better: "higher" });
    }
    const latRouter = await latencyP50(`${routed}/`);
    const latDirect = await latencyP50(`${direct}/`);
    const latTcp = await latencyP50(`${tcp}/`);
    rows.push({ metric: "GET small p50, 1 client (router)", value: latRouter, unit: "us", baseline: { name: "direct", value: latDirect }, better: "lower" });
    rows.push({ metric: "GET small p50, 1 client (TCP forward)", value: latTcp, unit: "us", baseline: { name: "direct", value: latDirect }, better: "lower" });
    extra.latencyAddedUs = latRouter - latDirect;
    const dlRouter = await downloadMBps(`${routed}/big`);
    const dlDirect = await downloadMBps(`${direct}/big`);
    const dlTcp = await downloadMBps(`${tcp}/big`);
    rows.push({ metric: `${BIG_MB} MB download (router)`, value: dlRouter, unit: "MB/s", baseline: { name: "direct", value: dlDirect }, better: "higher" });
    rows.push({ metric: `${BIG_MB} MB download (TCP forward)`, value: dlTcp, unit: "MB/s", baseline: { name: "direct", value: dlDirect }, better: "higher" });
    report("router", rows, { requests: REQUESTS, latencyRuns: LATENCY_RUNS, downloadMB: BIG_MB, ...extra });
  } finally {
    rt.proc.kill();
    up.proc.kill();
    await Promise.all([rt.proc.exited, up.proc.exited]);
  }
}

const role = process.argv[2];
if (role === "upstream") runUpstream();
else if (role === "router") runRouter(Number(process.argv[3])).catch((err) => {
  console.error(err);
  process.exit(1);
});
else main().catch((err) => {
  console.error(err);
  process.exit(1);
});

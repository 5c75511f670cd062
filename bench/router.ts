/**
 * bench/router.ts: what the router costs against talking to the guest port directly.
 *
 * Three processes, so the client, the router and the "guest" do not share an
 * event loop: an upstream Bun.serve standing in for the guest port, a Router
 * (HTTP on one port, a raw TCP forward on another) pointing at it, and this
 * process as the client (Bun fetch with keep-alive). Requests use the default
 * route (Host 127.0.0.1), so responses get the shared-origin sandbox header.
 *
 * - requests/s of a small GET with 1 and 16 concurrent clients, and the p50
 *   latency with one client: router vs direct (and vs the raw TCP forward);
 * - throughput of a 512 MB streamed download: router vs direct (and TCP forward).
 *
 * Reference rows, measured in the same rounds: the same traffic through two
 * C userspace relays from Debian, so the table shows the ceiling of ANY
 * userspace hop on this machine (client, proxy and upstream share its cores):
 * `socat` (a raw TCP relay, one forked process per connection: the analogue
 * of the TCP forward) and `haproxy` in HTTP mode with one thread (parses each
 * request and response, adds X-Forwarded-For and the shared-origin CSP header,
 * reuses upstream connections: the analogue of the router). Both run with
 * their defaults otherwise: socat moves 8 KiB per read (which bounds its
 * download figure), haproxy copies through 16 KiB buffers without splice(2).
 * A relay that is not installed is left out, with a note. The CPU column
 * "proxy" is the router process, or the relay with its forked children.
 *
 * The machine is shared, so every figure is measured in ROUNDS rounds that
 * alternate router, direct and TCP forward; the ratio is taken within each
 * round and its median reported (a slow spell hits both sides of a pair).
 * For each small-request phase the CPU time per request of every process
 * (client, router, upstream; user + system, from /proc and process.cpuUsage)
 * is recorded too: it shows where the router's cost goes.
 *
 * Prints the detail table, then the figures of issue 19 with their targets,
 * and writes bench/results/router.json.
 * Usage: bun bench/router.ts
 */
import { Router } from "../src/daemon/router/index.ts";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SHARED_ORIGIN_CSP } from "../src/daemon/router/origin-isolation.ts";
import { report, type Row, stats } from "./_lib.ts";

const REQUESTS = 4000;
const ROUNDS = 5;
/** USER_HZ: the unit of utime/stime in /proc/PID/stat (100 on every Linux we run on). */
const CLOCK_TICKS = 100;
const LATENCY_RUNS = 1500;
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

/** CPU seconds (user + system) a process has used so far, from /proc/PID/stat. */
function procCpu(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/**
 * CPU seconds of a process and its descendants: its own time, that of the
 * children it reaped (cutime, cstime) and that of the live ones (socat forks
 * one process per connection). A child that exits between two reads moves
 * from the live sum to cutime, so nothing is counted twice.
 */
function treeCpu(pid: number): number {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return 0; // exited just now: its time is in the parent's cutime
    throw err;
  }
  const f = stat.split(") ")[1]!.split(" ");
  let total = (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / CLOCK_TICKS;
  let children = "";
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  for (const c of children.split(" ")) if (c.trim() !== "") total += treeCpu(Number(c));
  return total;
}

/** CPU microseconds per request of client, proxy (the router, or a reference relay) and upstream over `fn` doing `n` requests. */
async function cpuPerRequest(pids: { proxy: number | null; upstream: number }, n: number, fn: () => Promise<unknown>): Promise<Record<string, number>> {
  const proxy = () => (pids.proxy === null ? 0 : treeCpu(pids.proxy));
  const r0 = proxy();
  const u0 = procCpu(pids.upstream);
  const c0 = process.cpuUsage();
  await fn();
  const c = process.cpuUsage(c0);
  const per = (s: number) => (s / n) * 1e6;
  return { client: per((c.user + c.system) / 1e6), router: per(proxy() - r0), upstream: per(procCpu(pids.upstream) - u0) };
}

/** A free loopback port (bound and released at once; the relay binds it right after). */
function freePort(): number {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = l.port;
  l.stop(true);
  return port;
}

/** A reference relay: a C userspace proxy from Debian in front of the same upstream. */
interface Relay {
  name: RefPath;
  proc: Bun.Subprocess;
  port: number;
}

/** Where each reference relay's binary is looked for (Debian's paths). */
const RELAY_BINARIES: Record<RefPath, string> = { socat: "/usr/bin/socat", haproxy: "/usr/sbin/haproxy" };

/** haproxy's config: HTTP mode on one thread (the router is one event loop), doing what the router does to each exchange. */
function haproxyConfig(port: number, upstreamPort: number): string {
  return [
    "global",
    "  nbthread 1",
    "defaults",
    "  mode http",
    "  timeout connect 5s",
    "  timeout client 60s",
    "  timeout server 60s",
    "  http-reuse always",
    "  option forwardfor",
    "frontend f",
    `  bind 127.0.0.1:${port}`,
    "  http-request set-header x-forwarded-host %[req.hdr(host)]",
    "  http-request set-header x-forwarded-proto http",
    `  http-response add-header content-security-policy "${SHARED_ORIGIN_CSP}"`,
    "  default_backend b",
    "backend b",
    `  server s1 127.0.0.1:${upstreamPort}`,
    "",
  ].join("\n");
}

/** Start the reference relays that are installed; each listens on a free port and forwards to the upstream. */
async function startRelays(upstreamPort: number): Promise<{ relays: Relay[]; missing: string[] }> {
  const relays: Relay[] = [];
  const missing: string[] = [];
  for (const name of REF_PATHS) {
    const bin = RELAY_BINARIES[name];
    if (!(await Bun.file(bin).exists())) {
      missing.push(`${name} (${bin} not installed)`);
      continue;
    }
    const port = freePort();
    let argv: string[];
    if (name === "socat") argv = [bin, `TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork`, `TCP:127.0.0.1:${upstreamPort},nodelay`];
    else {
      const cfg = join(mkdtempSync(join(tmpdir(), "bench-haproxy-")), "haproxy.cfg");
      writeFileSync(cfg, haproxyConfig(port, upstreamPort));
      argv = [bin, "-db", "-f", cfg];
    }
    const proc = Bun.spawn(argv, { stdin: "ignore", stdout: "ignore", stderr: "inherit" });
    relays.push({ name, proc, port });
  }
  // Wait until each accepts connections.
  for (const r of relays) {
    for (let i = 0; ; i++) {
      const ok = await fetch(`http://127.0.0.1:${r.port}/`).then((res) => res.arrayBuffer().then(() => res.ok), () => false);
      if (ok) break;
      if (i === 100 || r.proc.exitCode !== null) throw new Error(`reference relay ${r.name} did not come up on 127.0.0.1:${r.port}`);
      await Bun.sleep(50);
    }
  }
  return { relays, missing };
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

/** MB/s of downloading /big once. */
async function downloadMBps(url: string): Promise<number> {
  const t0 = performance.now();
  let n = 0;
  for await (const part of (await fetch(url)).body!) n += part.length;
  if (n !== BIG_MB * CHUNK.length) throw new Error(`download from ${url} got ${n} bytes, expected ${BIG_MB * CHUNK.length}`);
  return BIG_MB / ((performance.now() - t0) / 1000);
}

type MainPath = "router" | "direct" | "tcp";
/** The reference relays (not aegis): see the file comment. */
type RefPath = "socat" | "haproxy";
type Path = MainPath | RefPath;
const PATHS: MainPath[] = ["router", "direct", "tcp"];
const REF_PATHS: RefPath[] = ["socat", "haproxy"];
/** The paths measured in each round: PATHS, then the reference relays that are installed (set in main). */
let roundPaths: Path[] = PATHS;

/** Run `measure` for every path in ROUNDS alternating rounds; per path the values, plus the per-round ratio of each path to direct. */
async function rounds(measure: (p: Path) => Promise<number>): Promise<{ values: Record<Path, number[]>; ratios: Record<Exclude<Path, "direct">, number[]> }> {
  const values: Record<Path, number[]> = { router: [], direct: [], tcp: [], socat: [], haproxy: [] };
  const ratios = { router: [] as number[], tcp: [] as number[], socat: [] as number[], haproxy: [] as number[] };
  for (let i = 0; i < ROUNDS; i++) {
    // Alternate the order too, so neither side always runs right after the other.
    const order = i % 2 === 0 ? roundPaths : [...roundPaths].reverse();
    const got = {} as Record<Path, number>;
    for (const p of order) got[p] = await measure(p);
    for (const p of roundPaths) values[p].push(got[p]);
    for (const p of roundPaths) if (p !== "direct") ratios[p].push(got[p] / got.direct);
  }
  return { values, ratios };
}

const median = (xs: number[]) => stats(xs).median;

async function main(): Promise<void> {
  const up = await spawnRole("upstream");
  const rt = await spawnRole("router", String(up.info.port));
  const { relays, missing } = await startRelays(up.info.port!);
  roundPaths = [...PATHS, ...relays.map((r) => r.name)];
  const refs = relays.map((r) => r.name);
  try {
    const base = { direct: `http://127.0.0.1:${up.info.port}`, router: `http://127.0.0.1:${rt.info.port}`, tcp: `http://127.0.0.1:${rt.info.tcpPort}` } as Record<Path, string>;
    const proxyPid = { direct: rt.proc.pid, router: rt.proc.pid, tcp: rt.proc.pid } as Record<Path, number>;
    for (const r of relays) {
      base[r.name] = `http://127.0.0.1:${r.port}`;
      proxyPid[r.name] = r.proc.pid;
    }
    const rows: Row[] = [];
    const figures: Figure[] = [];
    const references: Reference[] = [];
    const cpu: Record<string, Partial<Record<Path, Record<string, number>>>> = {};
    /** The reference rows of one measurement, beside the router's. */
    const addRefs = (what: string, r: Awaited<ReturnType<typeof rounds>>, unit: string, better: Row["better"], kind: "ratio" | "added") => {
      for (const p of refs) {
        rows.push({ metric: `${what} (${RELAY_LABEL[p]})`, value: median(r.values[p]), unit, baseline: { name: "direct", value: median(r.values.direct) }, better });
        const value = kind === "ratio" ? median(r.ratios[p]) : median(r.values[p].map((v, i) => v - r.values.direct[i]!));
        references.push({ measurement: what, relay: p, value: median(r.values[p]), unit, [kind]: value });
      }
    };
    for (const c of [1, 16]) {
      for (const p of roundPaths) await rps(`${base[p]}/`, c); // warm up pools and JIT
      const phaseCpu: Record<Path, Record<string, number>[]> = { router: [], direct: [], tcp: [], socat: [], haproxy: [] };
      const r = await rounds(async (p) => {
        let v = 0;
        phaseCpu[p].push(await cpuPerRequest({ proxy: proxyPid[p], upstream: up.proc.pid }, REQUESTS, async () => (v = await rps(`${base[p]}/`, c))));
        return v;
      });
      const label = `GET small, ${c} client${c > 1 ? "s" : ""}`;
      rows.push({ metric: `${label} (router)`, value: median(r.values.router), unit: "req/s", baseline: { name: "direct", value: median(r.values.direct) }, better: "higher" });
      rows.push({ metric: `${label} (TCP forward)`, value: median(r.values.tcp), unit: "req/s", baseline: { name: "direct", value: median(r.values.direct) }, better: "higher" });
      addRefs(label, r, "req/s", "higher", "ratio");
      figures.push({ figure: `router HTTP throughput / direct, small requests, ${c} client${c > 1 ? "s" : ""}`, value: median(r.values.router), baseline: median(r.values.direct), unit: "req/s", ratio: median(r.ratios.router), target: ">= 0.90x", met: median(r.ratios.router) >= 0.9, tcpForwardRatio: median(r.ratios.tcp) });
      cpu[label] = Object.fromEntries(roundPaths.map((p) => [p, Object.fromEntries(["client", "router", "upstream"].map((k) => [k, median(phaseCpu[p].map((x) => x[k]!))]))]));
    }
    const lat = await rounds((p) => latencyP50(`${base[p]}/`));
    const added = lat.values.router.map((v, i) => v - lat.values.direct[i]!);
    rows.push({ metric: "GET small p50, 1 client (router)", value: median(lat.values.router), unit: "us", baseline: { name: "direct", value: median(lat.values.direct) }, better: "lower" });
    rows.push({ metric: "GET small p50, 1 client (TCP forward)", value: median(lat.values.tcp), unit: "us", baseline: { name: "direct", value: median(lat.values.direct) }, better: "lower" });
    addRefs("GET small p50, 1 client", lat, "us", "lower", "added");
    figures.push({ figure: "router added p50 latency, 1 client", value: median(lat.values.router), baseline: median(lat.values.direct), unit: "us", added: median(added), target: "<= +50 us", met: median(added) <= 50, tcpForwardAdded: median(lat.values.tcp.map((v, i) => v - lat.values.direct[i]!)) });
    const dl = await rounds((p) => downloadMBps(`${base[p]}/big`));
    rows.push({ metric: `${BIG_MB} MB download (router)`, value: median(dl.values.router), unit: "MB/s", baseline: { name: "direct", value: median(dl.values.direct) }, better: "higher" });
    rows.push({ metric: `${BIG_MB} MB download (TCP forward)`, value: median(dl.values.tcp), unit: "MB/s", baseline: { name: "direct", value: median(dl.values.direct) }, better: "higher" });
    addRefs(`${BIG_MB} MB download`, dl, "MB/s", "higher", "ratio");
    figures.push({ figure: `router ${BIG_MB} MB download / direct`, value: median(dl.values.router), baseline: median(dl.values.direct), unit: "MB/s", ratio: median(dl.ratios.router), target: ">= 0.90x", met: median(dl.ratios.router) >= 0.9, tcpForwardRatio: median(dl.ratios.tcp) });
    report("router", rows, { requests: REQUESTS, latencyRuns: LATENCY_RUNS, downloadMB: BIG_MB, rounds: ROUNDS, figures, references, referencesMissing: missing, cpuMicrosecondsPerRequest: cpu, latencyAddedUs: median(added) });
    printFigures(figures, cpu, references, missing);
  } finally {
    for (const p of [rt.proc, up.proc, ...relays.map((r) => r.proc)]) p.kill();
    await Promise.all([rt.proc.exited, up.proc.exited, ...relays.map((r) => r.proc.exited)]);
  }
}

/** How the reference relays are named in the rows. */
const RELAY_LABEL: Record<RefPath, string> = { socat: "socat TCP relay, C reference", haproxy: "haproxy HTTP proxy, C reference" };

/** One reference relay's figure for one measurement, as a ratio to direct or added latency. */
interface Reference {
  measurement: string;
  relay: RefPath;
  value: number;
  unit: string;
  ratio?: number;
  added?: number;
}

/** One figure of issue 19's table. */
interface Figure {
  figure: string;
  value: number;
  baseline: number;
  unit: string;
  ratio?: number;
  added?: number;
  target: string;
  met: boolean;
  tcpForwardRatio?: number;
  tcpForwardAdded?: number;
}

function printFigures(figures: Figure[], cpu: Record<string, Partial<Record<Path, Record<string, number>>>>, references: Reference[], missing: string[]): void {
  const f = (v: number) => (v >= 100 ? v.toFixed(0) : v.toFixed(1));
  console.log("\nfigure | value | baseline (direct, same run) | ratio | target | met | raw TCP forward");
  for (const x of figures) {
    const ratio = x.ratio !== undefined ? `${x.ratio.toFixed(2)}x` : `+${f(x.added!)} us`;
    const tcp = x.tcpForwardRatio !== undefined ? `${x.tcpForwardRatio.toFixed(2)}x` : `+${f(x.tcpForwardAdded!)} us`;
    console.log(`${x.figure} | ${f(x.value)} ${x.unit} | ${f(x.baseline)} ${x.unit} | ${ratio} | ${x.target} | ${x.met ? "yes" : "no"} | ${tcp}`);
  }
  console.log("\nthe ceiling of any userspace hop here: C relays in the same rounds (ratio to direct, or added p50)");
  for (const x of references) console.log(`${x.measurement} | ${RELAY_LABEL[x.relay]} | ${f(x.value)} ${x.unit} | ${x.ratio !== undefined ? `${x.ratio.toFixed(2)}x` : `+${f(x.added!)} us`}`);
  for (const m of missing) console.log(`not measured: ${m}`);
  console.log("\nCPU per request, us (user + system; medians of the rounds): client / proxy (router, or the relay) / upstream");
  for (const [label, byPath] of Object.entries(cpu)) {
    console.log(`${label}: ${roundPaths.map((p) => `${p} ${f(byPath[p]!.client!)} / ${f(byPath[p]!.router!)} / ${f(byPath[p]!.upstream!)}`).join("; ")}`);
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

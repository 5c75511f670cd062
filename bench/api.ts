/**
 * bench/api.ts: how fast the CLI and the daemon API feel.
 *
 * - whole-process time of `aegis status` and `aegis secret list`, next to
 *   `curl --unix-socket` doing the same request against the same daemon;
 * - requests per second of `GET /v1/status` over the socket with 1 and 16
 *   concurrent clients, next to a bare `Bun.serve` unix-socket hello.
 *
 * Prints a table and writes bench/results/api.json.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { report, repoRoot, type Row, stats, timeRuns } from "./_lib.ts";

const RUNS = 15;
const REQUESTS = 2000;

async function spawnOk(argv: string[], env: Record<string, string>): Promise<void> {
  const p = Bun.spawn(argv, { env, stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const [, , code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`${argv.join(" ")} exited ${code}`);
}

async function rps(socket: string, path: string, concurrency: number): Promise<number> {
  let next = 0;
  const worker = async () => {
    while (next++ < REQUESTS) {
      const res = await fetch(`http://aegis${path}`, { unix: socket });
      await res.arrayBuffer();
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  return REQUESTS / ((performance.now() - t0) / 1000);
}

async function main(): Promise<void> {
  const bin = join(repoRoot, "bin", "aegis");
  const home = mkdtempSync(join(tmpdir(), "ab-"));
  const env = { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/root", AEGIS_HOME: home };
  const socket = join(home, "aegisd.sock");
  const bareSocket = join(home, "bare.sock");
  const bare = Bun.serve({ unix: bareSocket, fetch: () => Response.json({ status: "running" }) });
  try {
    await spawnOk([bin, "up"], env);
    await spawnOk([bin, "secret", "set", "BENCH_KEY", "v"], env);
    const curl = (path: string) => spawnOk(["curl", "-sf", "--unix-socket", socket, `http://aegis${path}`], env);
    const rows: Row[] = [];
    const cliStatus = stats(await timeRuns(RUNS, () => spawnOk([bin, "status"], env)));
    const curlStatus = stats(await timeRuns(RUNS, () => curl("/v1/status")));
    rows.push({ metric: "aegis status (process, median)", value: cliStatus.median, unit: "ms", baseline: { name: "curl --unix-socket", value: curlStatus.median }, better: "lower" });
    const cliList = stats(await timeRuns(RUNS, () => spawnOk([bin, "secret", "list"], env)));
    const curlList = stats(await timeRuns(RUNS, () => curl("/v1/secrets")));
    rows.push({ metric: "aegis secret list (process, median)", value: cliList.median, unit: "ms", baseline: { name: "curl --unix-socket", value: curlList.median }, better: "lower" });
    for (const c of [1, 16]) {
      await rps(socket, "/v1/status", c);
      const ours = await rps(socket, "/v1/status", c);
      const base = await rps(bareSocket, "/", c);
      rows.push({ metric: `GET /v1/status, ${c} client${c > 1 ? "s" : ""}`, value: ours, unit: "req/s", baseline: { name: "bare Bun.serve unix", value: base }, better: "higher" });
    }
    report("api", rows, { runs: RUNS, requests: REQUESTS, cli_status_ms: cliStatus, cli_secret_list_ms: cliList });
  } finally {
    await spawnOk([bin, "down"], env).catch((err: unknown) => console.error(`aegis down failed: ${String(err)}`));
    bare.stop(true);
    rmSync(home, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});

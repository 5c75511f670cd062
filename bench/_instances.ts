/**
 * @module bench/_instances
 * Driving instances through the real CLI for the lifecycle benchmarks
 * (bench/lifecycle.ts, bench/wake.ts): a CLI bound to one private
 * AEGIS_HOME, instance info polling, a busybox httpd instance, time to
 * first byte through the router, and the idle-stop -> wake loop with the
 * phases aegisd logged for each wake (bench/_wake.ts).
 */
import { wakeDurations, wakeLines } from "./_wake.ts";

/** The instance command every lifecycle benchmark serves: busybox httpd answering "ok\n" on 8080. */
export const HTTPD = ["sh", "-c", "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www"];

/** The CLI against one private AEGIS_HOME. */
export class Cli {
  constructor(
    readonly bin: string,
    readonly home: string,
  ) {}

  env(extra: Record<string, string> = {}): Record<string, string> {
    return { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root", AEGIS_HOME: this.home, AEGIS_ROUTER_PORT: "0", ...extra };
  }

  /** Run `aegis ...args`, draining both pipes; throws unless it exits 0. */
  async ok(args: string[], extra: Record<string, string> = {}): Promise<string> {
    const p = Bun.spawn([this.bin, ...args], { env: this.env(extra), stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    if (code !== 0) throw new Error(`aegis ${args.join(" ")} exited ${code}\nstdout: ${out}\nstderr: ${err}`);
    return out;
  }

  /** Run `aegis ...args --json` and parse its output. */
  async json<T = Record<string, unknown>>(args: string[]): Promise<T> {
    return JSON.parse(await this.ok([...args, "--json"])) as T;
  }
}

/** The part of `aegis instance info --json` the benchmarks read. */
export interface InstanceInfo {
  id: string;
  state: string;
  has_snapshot: boolean;
  expose: { guest_port: number; host_port: number | null }[];
}

/** `aegis instance info NAME`. */
export const info = (cli: Cli, name: string) => cli.json<InstanceInfo>(["instance", "info", name]);

/** Poll `info` until `ok` holds; throws after `timeoutMs`. */
export async function waitFor(cli: Cli, name: string, what: string, ok: (i: InstanceInfo) => boolean, timeoutMs = 60_000): Promise<InstanceInfo> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const i = await info(cli, name);
    if (ok(i)) return i;
    if (Date.now() > deadline) throw new Error(`instance ${name} did not become ${what} within ${timeoutMs} ms (state ${i.state}, has_snapshot ${i.has_snapshot})`);
    await Bun.sleep(100);
  }
}

/** One GET on a fresh connection: ms to the response head, then the body is read and checked. */
export async function ttfb(url: string): Promise<number> {
  const t0 = performance.now();
  const res = await fetch(url, { keepalive: false, signal: AbortSignal.timeout(60_000) });
  const ms = performance.now() - t0;
  const body = await res.text();
  if (res.status !== 200 || body !== "ok\n") throw new Error(`GET ${url}: ${res.status} ${body.slice(0, 200)}`);
  return ms;
}

/** `instance start` of the httpd, then poll through the router until a 200: ms from the CLI spawn. */
export async function startToServing(cli: Cli, router: string, name: string, flags: string[] = []): Promise<number> {
  const t0 = performance.now();
  await cli.ok(["instance", "start", "--name", name, "--expose", "8080", ...flags, "--", ...HTTPD]);
  const deadline = Date.now() + 60_000;
  for (;;) {
    const res = await fetch(`${router}/${name}/`, { signal: AbortSignal.timeout(60_000) });
    const body = await res.text();
    if (res.status === 200 && body === "ok\n") return performance.now() - t0;
    if (Date.now() > deadline) throw new Error(`${name} not serving through the router after 60 s: ${res.status} ${body.slice(0, 200)}`);
    await Bun.sleep(20);
  }
}


/** `aegis up` (router on a free port); the router URL and aegisd's pid. */
export async function up(cli: Cli, extra: Record<string, string> = {}): Promise<{ router: string; pid: number }> {
  await cli.ok(["up"], extra);
  const s = await cli.json<{ router_url: string; pid: number }>(["status"]);
  return { router: s.router_url, pid: s.pid };
}

/** One wake: time to first byte through the router, and where it went (bench/_wake.ts; empty when aegisd logged none). */
export interface Wake {
  ttfb: number;
  phases: Record<string, number>;
}

/**
 * Wake an idle-stopped instance `runs` times: start it with a 1 s idle
 * pause and stop, then each time wait for the stop (with or without a
 * snapshot), time a GET through the router and read the wake's phases from
 * aegisd's log. Deletes the instance at the end.
 */
export async function wakeFromStopped(cli: Cli, router: string, name: string, flags: string[], snapshot: boolean, runs: number): Promise<Wake[]> {
  await startToServing(cli, router, name, ["--pause-after", "1", "--stop-after", "1", ...flags]);
  const out: Wake[] = [];
  for (let i = 0; i < runs; i++) {
    const s = await waitFor(cli, name, snapshot ? "stopped with a snapshot" : "stopped", (x) => x.state === "stopped" && (!snapshot || x.has_snapshot));
    if (s.has_snapshot !== snapshot) throw new Error(`${name}: has_snapshot is ${s.has_snapshot}, expected ${snapshot}`);
    const before = wakeLines(cli.home, s.id).length;
    const ms = await ttfb(`${router}/${name}/`);
    const line = wakeLines(cli.home, s.id)[before];
    if (line && line.how !== (snapshot ? "restored" : "booted")) throw new Error(`${name}: the wake ${line.how}, expected ${snapshot ? "a restore" : "a boot"}`);
    out.push({ ttfb: ms, phases: line ? wakeDurations(line, ms) : {} });
    const after = await info(cli, name);
    if (after.state !== "running" || after.has_snapshot) throw new Error(`${name} after the wake: state ${after.state}, has_snapshot ${after.has_snapshot}`);
  }
  await cli.ok(["instance", "delete", name]);
  return out;
}

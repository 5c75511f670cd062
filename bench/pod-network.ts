/**
 * bench/pod-network.ts: what the pod network mode (`netns_path`,
 * vmm/network/pod.ts) adds to a boot, against the default slirp mode in its
 * isolated form (a namespace + veth + nft rules + DNS resolver per VM).
 *
 * 1. Host side, interleaved ROUNDS times: PodNetwork.setup + close on a
 *    namespace made here as CNI's bridge plugin would (veth, 10.88.250.2/24,
 *    default route) vs VmNetwork.setup + close with the default policy.
 * 2. Whole boots, interleaved BOOTS times (0 skips): `aegis instance start`
 *    of the same busybox command in each mode under a private aegisd,
 *    templates off, so both are cold boots (a pod network VM always is).
 *
 * Root only. Prints a table and writes bench/results/pod-network.json.
 * Usage: sudo bun bench/pod-network.ts   (BOOTS=3 ROUNDS=10 by default)
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULT_NETWORK } from "../src/api/network-policy.ts";
import { VmNetwork } from "../src/vmm/network/index.ts";
import { PodNetwork } from "../src/vmm/network/pod.ts";
import { aegisCli, report, repoRoot, stats } from "./_lib.ts";

const ROUNDS = Number(process.env.ROUNDS ?? 10);
const BOOTS = Number(process.env.BOOTS ?? 3);
const NS = "aegis-podbench";
const HOST_IF = "podbench0";

function sh(argv: string[]): void {
  const r = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr.toString().trim()}`);
}

function makeNamespace(): void {
  sh(["ip", "netns", "add", NS]);
  sh(["ip", "link", "add", HOST_IF, "type", "veth", "peer", "name", "eth0", "netns", NS]);
  sh(["ip", "addr", "add", "10.88.250.1/24", "dev", HOST_IF]);
  sh(["ip", "link", "set", HOST_IF, "up"]);
  sh(["ip", "-n", NS, "addr", "add", "10.88.250.2/24", "dev", "eth0"]);
  sh(["ip", "-n", NS, "link", "set", "eth0", "up"]);
  sh(["ip", "-n", NS, "route", "add", "default", "via", "10.88.250.1"]);
}

const home = mkdtempSync(join(tmpdir(), "aegis-podbench-"));
makeNamespace();
try {
  const pod: number[] = [];
  const slirp: number[] = [];
  for (let i = 0; i <= ROUNDS; i++) {
    let t0 = performance.now();
    await (await PodNetwork.setup(`/run/netns/${NS}`)).close();
    const p = performance.now() - t0;
    t0 = performance.now();
    await (await VmNetwork.setup(DEFAULT_NETWORK, home, home, () => {})).close();
    const s = performance.now() - t0;
    if (i > 0) (pod.push(p), slirp.push(s)); // round 0 warms up (modules, nft table)
  }
  const boots = { pod: [] as number[], slirp: [] as number[] };
  if (BOOTS > 0) {
    const env = { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin", HOME: home, AEGIS_HOME: join(home, "h"), AEGIS_ROUTER_PORT: "0", AEGIS_E2B_PORT: "0", AEGIS_WARM: "0", AEGIS_TEMPLATES: "0", AEGIS_PAUSE_AFTER: "0", AEGIS_BOOT_TIMEOUT_MS: "90000" };
    await aegisCli(env, "up");
    try {
      for (let i = 0; i < BOOTS; i++) {
        for (const mode of ["slirp", "pod"] as const) {
          const t0 = performance.now();
          await aegisCli(env, "instance", "start", "--name", `b-${mode}`, ...(mode === "pod" ? ["--netns", `/run/netns/${NS}`] : []), "--", "sleep", "1000");
          boots[mode].push(performance.now() - t0);
          await aegisCli(env, "instance", "stop", `b-${mode}`);
          await aegisCli(env, "instance", "delete", `b-${mode}`);
        }
      }
    } finally {
      await aegisCli(env, "down");
    }
  }
  const rows = [
    { metric: "host network setup + teardown (median)", value: stats(pod).median, unit: "ms", baseline: { name: "slirp in its namespace", value: stats(slirp).median }, better: "lower" as const },
    ...(BOOTS > 0 ? [{ metric: "instance start, cold boot (median)", value: stats(boots.pod).median, unit: "ms", baseline: { name: "slirp", value: stats(boots.slirp).median }, better: "lower" as const }] : []),
  ];
  report("pod-network", rows, { samples: { setup: { pod, slirp }, boots }, repo: repoRoot });
} finally {
  Bun.spawnSync(["ip", "link", "del", HOST_IF]);
  Bun.spawnSync(["ip", "netns", "del", NS]);
  rmSync(home, { recursive: true, force: true });
}

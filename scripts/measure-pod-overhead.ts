/**
 * @module scripts/measure-pod-overhead
 * How docs/kubernetes.md's `overhead.podFixed` was measured (root, run
 * from the repository after `make build`): a containerd of its own (the
 * e2e helper) runs one idle busybox task (`sleep`) through the aegis
 * runtime at the default VM size; after it settles, the host memory of the
 * per-task processes (QEMU, the rootfs virtiofsd and its child, the shim)
 * is read from /proc/<pid>/smaps_rollup (PSS, and USS = private clean +
 * private dirty), and their CPU use (utime + stime) over a window. aegisd
 * is shared by every task of the host, so it is reported apart.
 *
 *   bun scripts/measure-pod-overhead.ts [settle_s=60] [window_s=60]
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { TestHome } from "../test/helpers/aegis.ts";
import { TestContainerd } from "../test/helpers/containerd.ts";
import { makeImage, makeLayer } from "../test/helpers/oci-build.ts";
import { writeDockerArchive } from "../test/helpers/oci-layout.ts";

const IMAGE = "localhost/aegis-overhead:1";
const settleS = Number(process.argv[2] ?? 60);
const windowS = Number(process.argv[3] ?? 60);

function procs(): { pid: number; cmd: string }[] {
  const out: { pid: number; cmd: string }[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      out.push({ pid: Number(e), cmd: readFileSync(`/proc/${e}/cmdline`, "utf8").replaceAll("\0", " ") });
    } catch {
      // exited
    }
  }
  return out;
}

function mem(pid: number): { pss: number; uss: number } {
  const t = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  const kb = (n: string) => Number(new RegExp(`^${n}:\\s+(\\d+)`, "m").exec(t)?.[1] ?? 0);
  return { pss: kb("Pss"), uss: kb("Private_Clean") + kb("Private_Dirty") };
}

function cpuTicks(pid: number): number {
  const s = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
  return Number(f[11]) + Number(f[12]);
}

const home = new TestHome();
const ctd = new TestContainerd(home.dir);
try {
  await ctd.start();
  const bb = new Uint8Array(await Bun.file("/bin/busybox").arrayBuffer());
  const layer = makeLayer([
    { path: "bin/", type: "Directory" },
    { path: "bin/busybox", content: bb, mode: 0o755 },
    { path: "bin/sleep", type: "SymbolicLink", linkpath: "busybox", mode: 0o777 },
  ]);
  await writeDockerArchive(join(ctd.dir, "image.tar"), join(ctd.dir, "image"), makeImage([layer], { env: ["PATH=/bin"] }), IMAGE);
  if ((await ctd.ctr(["images", "import", join(ctd.dir, "image.tar")])).code !== 0) throw new Error("import failed");
  const t0 = performance.now();
  const run = await ctd.ctr(["run", "-d", "--runtime", "io.containerd.aegis.v2", IMAGE, "idle", "sleep", "100000"], { timeoutMs: 300_000 });
  if (run.code !== 0) throw new Error(`ctr run failed: ${run.stderr}`);
  console.log(`task running after ${((performance.now() - t0) / 1000).toFixed(1)} s; settling ${settleS} s`);
  await Bun.sleep(settleS * 1000);
  const all = procs();
  const groups: Record<string, number[]> = {
    qemu: all.filter((p) => p.cmd.includes("qemu-system") && p.cmd.includes(home.dir)).map((p) => p.pid),
    virtiofsd: all.filter((p) => p.cmd.includes("virtiofsd") && p.cmd.includes(home.dir) && !p.cmd.startsWith("/usr/bin/unshare")).map((p) => p.pid),
    shim: all.filter((p) => p.cmd.includes("containerd-shim") && p.cmd.includes(ctd.dir)).map((p) => p.pid),
    "aegisd (shared by all tasks)": all.filter((p) => /(^|\/)aegisd /.test(p.cmd) || (p.cmd.includes("aegis") && p.cmd.includes(" daemon"))).map((p) => p.pid).filter((pid) => readFileSync(`/proc/${pid}/environ`, "utf8").includes(`AEGIS_HOME=${home.dir}`)),
  };
  const before = Object.fromEntries(Object.entries(groups).map(([k, pids]) => [k, pids.map(cpuTicks)]));
  await Bun.sleep(windowS * 1000);
  let pss = 0;
  let uss = 0;
  let cpu = 0;
  for (const [name, pids] of Object.entries(groups)) {
    const m = pids.map(mem);
    const ticks = pids.map(cpuTicks).reduce((a, b, i) => a + b - before[name]![i]!, 0);
    const line = { pids, pss_mib: m.reduce((a, b) => a + b.pss, 0) / 1024, uss_mib: m.reduce((a, b) => a + b.uss, 0) / 1024, cpu_millicores: (ticks * 10) / windowS };
    console.log(`${name}: pids ${pids.join(",")}  PSS ${line.pss_mib.toFixed(1)} MiB  USS ${line.uss_mib.toFixed(1)} MiB  CPU ${line.cpu_millicores.toFixed(1)} m`);
    if (!name.startsWith("aegisd")) {
      pss += line.pss_mib;
      uss += line.uss_mib;
      cpu += line.cpu_millicores;
    }
  }
  console.log(`per task (qemu + virtiofsd + shim): PSS ${pss.toFixed(1)} MiB, USS ${uss.toFixed(1)} MiB, CPU ${cpu.toFixed(1)} millicores over ${windowS} s idle`);
  const metrics = await ctd.ctr(["task", "metrics", "idle"]);
  console.log(metrics.stdout);
  await ctd.ctr(["task", "kill", "-s", "SIGKILL", "idle"]);
  await Bun.sleep(2000);
  await ctd.ctr(["task", "delete", "idle"]);
  await ctd.ctr(["container", "delete", "idle"]);
} finally {
  await ctd[Symbol.asyncDispose]();
  await home[Symbol.asyncDispose]();
}

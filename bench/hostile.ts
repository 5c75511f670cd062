/**
 * bench/hostile.ts: what a hostile guest costs aegisd (issue 13). One
 * instance; root in it floods the host through every channel it has (see
 * test/helpers/hostile-guest.ts): 400 MiB without a newline on the control
 * port, 200k invalid notifications, 30 tether frames of ~1 MiB control
 * characters (then one stream replay without after_seq), 20k MCP requests.
 * For each: aegisd's peak RSS while it runs (sampled every 50 ms), its RSS
 * growth over the idle daemon measured in the same run (the baseline), and
 * how much aegisd.log and the database grew.
 * Prints a table and writes bench/results/hostile.json.
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hostileCommand, hostileEnv, memoryMiB, withPeakRss } from "../test/helpers/hostile-guest.ts";
import { aegisCli, report, type Row } from "./_lib.ts";


async function main(): Promise<void> {
  const home = mkdtempSync(join(tmpdir(), "aeb-"));
  const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root", AEGIS_HOME: home, AEGIS_ROUTER_PORT: "0", AEGIS_WARM: "0" };
  const dataSize = (f: string) => statSync(join(home, "data", f)).size;
  try {
    await aegisCli(env, "up");
    const pid = Number(readFileSync(join(home, "data", "aegisd.pid"), "utf8"));
    await aegisCli(env, "instance", "start", "--name", "evil", "--pause-after", "0", "--", "sleep", "100000");
    await aegisCli(env, "exec", "evil", "--", "true");
    await Bun.sleep(2000);
    const idle = memoryMiB(pid).rss;
    const rows: Row[] = [];
    const details: Record<string, unknown>[] = [];
    const floods: [string, Parameters<typeof hostileEnv>[0], number][] = [
      ["control line 400 MiB, no newline", "line", 400],
      ["200k invalid notifications", "invalid", 200_000],
      ["30 x 1 MiB control-char frames", "frames", 30],
      ["20k MCP requests", "mcp", 20_000],
    ];
    for (const [name, mode, n] of floods) {
      const log0 = dataSize("aegisd.log");
      const db0 = dataSize("aegis.db") + dataSize("aegis.db-wal");
      const t0 = performance.now();
      const { result, peak } = await withPeakRss(pid, () => aegisCli(env, "exec", ...hostileEnv(mode, n), "evil", "--", ...hostileCommand()));
      const ms = performance.now() - t0;
      const logGrowKiB = (dataSize("aegisd.log") - log0) / 1024;
      const dbGrowMiB = (dataSize("aegis.db") + dataSize("aegis.db-wal") - db0) / 1024 / 1024;
      rows.push({ metric: `${name}: peak RSS`, value: peak, unit: "MiB", baseline: { name: "idle aegisd", value: idle }, better: "lower" });
      rows.push({ metric: `${name}: aegisd.log growth`, value: logGrowKiB, unit: "KiB", better: "lower" });
      details.push({ flood: name, guest: JSON.parse(result.trim().split("\n").at(-1)!), ms, peak_rss_mib: peak, log_growth_kib: logGrowKiB, db_growth_mib: dbGrowMiB });
    }
    // A stream without after_seq replays the recent frames (the 30 above) and must not load the whole log.
    const { peak } = await withPeakRss(pid, async () => {
      const ac = new AbortController();
      const res = await fetch("http://aegis/v1/instances/evil/tether/stream", { unix: join(home, "aegisd.sock"), signal: ac.signal });
      const reader = res.body!.getReader();
      for (let lines = 0; lines < 30; ) {
        const { value, done } = await reader.read();
        if (done) break;
        lines += value.filter((b: number) => b === 10).length;
      }
      ac.abort();
    });
    rows.push({ metric: "tether stream replay: peak RSS", value: peak, unit: "MiB", baseline: { name: "idle aegisd", value: idle }, better: "lower" });
    report("hostile", rows, { idle_rss_mib: idle, floods: details, final_rss_mib: memoryMiB(pid).rss });
    for (const d of details) console.log(JSON.stringify(d));
  } finally {
    await aegisCli(env, "down").catch((err: unknown) => console.error(String(err)));
    rmSync(home, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});

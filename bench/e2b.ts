/**
 * bench/e2b.ts: the figure E2B is judged on, `Sandbox.create()` -> the first
 * output of the first command (the unmodified e2b SDK, configured by
 * `aegis e2b env`), split into create and first command, against
 * `aegis run -- true` (a VM booted, a command run, the VM gone) measured in
 * the same run on the same machine.
 * Prints a table and writes bench/results/e2b.json.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Sandbox } from "e2b";
import { aegisCli, report, type Row, stats } from "./_lib.ts";

const RUNS = 3;


async function main(): Promise<void> {
  const home = mkdtempSync(join(tmpdir(), "ag-bench-"));
  const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root", AEGIS_HOME: home, AEGIS_ROUTER_PORT: "0", AEGIS_E2B_PORT: "0" };
  try {
    await aegisCli(env, "up");
    const e = JSON.parse(await aegisCli(env, "e2b", "env", "--json")) as { api_url: string; sandbox_url: string; domain: string; api_key: string };
    const opts = { apiKey: e.api_key, apiUrl: e.api_url, sandboxUrl: e.sandbox_url, domain: e.domain };
    // One untimed boot builds the guest assets, as the first `aegis run` of a new home does.
    await aegisCli(env, "run", "--", "true");
    const create: number[] = [];
    const firstOutput: number[] = [];
    const run: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const t0 = performance.now();
      const sbx = await Sandbox.create({ ...opts, timeoutMs: 300_000 });
      const t1 = performance.now();
      let first = 0;
      await sbx.commands.run("echo hello", { onStdout: () => void (first ||= performance.now()) });
      create.push(t1 - t0);
      firstOutput.push(first - t0);
      await sbx.kill();
      const t2 = performance.now();
      await aegisCli(env, "run", "--", "true");
      run.push(performance.now() - t2);
    }
    const m = (xs: number[]) => stats(xs).median;
    const rows: Row[] = [
      { metric: "Sandbox.create() -> first command output", value: m(firstOutput), unit: "ms", baseline: { name: "aegis run -- true", value: m(run) }, better: "lower" },
      { metric: "Sandbox.create()", value: m(create), unit: "ms", baseline: { name: "aegis run -- true", value: m(run) }, better: "lower" },
      { metric: "first command after create", value: m(firstOutput) - m(create), unit: "ms", better: "lower" },
    ];
    report("e2b", rows, { runs: RUNS, create_ms: create, first_output_ms: firstOutput, aegis_run_true_ms: run });
  } finally {
    await aegisCli(env, "down").catch(() => undefined);
    rmSync(home, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});

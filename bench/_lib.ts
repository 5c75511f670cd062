/**
 * Shared benchmark helpers: timing, summary statistics, the results table and
 * the JSON file under bench/results/.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";

/** Repository root. */
export const repoRoot = resolve(import.meta.dir, "..");

/** min / median / max / mean of a sample, in the sample's unit. */
export function stats(sample: number[]) {
  const s = [...sample].sort((a, b) => a - b);
  const median = s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  return { n: s.length, min: s[0]!, median, max: s[s.length - 1]!, mean: s.reduce((a, b) => a + b, 0) / s.length };
}

/** Time `fn` `n` times (after `warmup` untimed runs); milliseconds. */
export async function timeRuns(n: number, fn: () => Promise<unknown>, warmup = 1): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn();
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn();
    out.push(performance.now() - t0);
  }
  return out;
}

/** One row of a results table. */
export interface Row {
  metric: string;
  value: number;
  unit: string;
  baseline?: { name: string; value: number };
  /** How to read the ratio: "lower" (time) or "higher" (throughput) is better. */
  better: "lower" | "higher";
}

/** Print rows as a table and write `bench/results/<name>.json`. */
export function report(name: string, rows: Row[], extra: Record<string, unknown> = {}): void {
  const fmt = (v: number) => (v >= 100 ? v.toFixed(0) : v.toFixed(2));
  const lines = rows.map((r) => [
    r.metric,
    `${fmt(r.value)} ${r.unit}`,
    r.baseline ? `${fmt(r.baseline.value)} ${r.unit} (${r.baseline.name})` : "-",
    r.baseline ? `${(r.value / r.baseline.value).toFixed(2)}x` : "-",
  ]);
  const header = ["metric", "aegis", "baseline", "ratio"];
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const print = (cells: string[]) => console.log(cells.map((c, i) => c.padEnd(widths[i]!)).join("  "));
  print(header);
  print(widths.map((w) => "-".repeat(w)));
  for (const l of lines) print(l);
  const dir = join(repoRoot, "bench", "results");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${name}.json`), `${JSON.stringify({ name, date: new Date().toISOString(), host: { cpus: navigator.hardwareConcurrency, bun: Bun.version }, rows, ...extra }, null, 2)}\n`);
}

/** Run bin/aegis with `env`; its stdout, or an error with its stderr when it fails. */
export async function aegisCli(env: Record<string, string>, ...args: string[]): Promise<string> {
  const p = Bun.spawn([join(repoRoot, "bin", "aegis"), ...args], { env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`aegis ${args.join(" ")} exited ${code}: ${err}`);
  return out;
}

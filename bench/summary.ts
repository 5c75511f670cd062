/**
 * @module bench/summary
 * The last step of `make bench`: one table of every figure of the
 * performance issue (#19), read from the JSON the benchmarks just wrote
 * (bench/results/{boot,lifecycle,router,density}.json). Each row: figure,
 * value, the baseline measured in the same benchmark run, ratio, target and
 * whether it is met. Values are absolute (ms, MB, req/s) so they read the
 * same under KVM; ratios are what holds across machines. A figure whose
 * benchmark did not run (or no longer writes that metric) is printed as
 * "not measured", never guessed. Writes bench/results/summary.json.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { detectAccel } from "../src/vmm/accel.ts";
import { repoRoot } from "./_lib.ts";

const dir = join(repoRoot, "bench", "results");

interface JsonRow {
  metric: string;
  value: number;
  unit: string;
  baseline?: { name: string; value: number };
}

/** One line of the summary. */
export interface SummaryRow {
  figure: string;
  value: number | null;
  unit: string;
  baseline: { name: string; value: number } | null;
  /** value / baseline, or value - baseline for `difference` targets. */
  ratio: number | null;
  target: string;
  met: boolean | null;
  source: string;
}

function load(name: string): { rows?: JsonRow[]; [k: string]: unknown } | undefined {
  const p = join(dir, `${name}.json`);
  return existsSync(p) ? (JSON.parse(readFileSync(p, "utf8")) as { rows?: JsonRow[] }) : undefined;
}

function find(file: ReturnType<typeof load>, re: RegExp): JsonRow | undefined {
  return file?.rows?.find((r) => re.test(r.metric));
}

type Target = { kind: "ratio-max" | "ratio-min" | "diff-max" | "value-max"; limit: number };

/** A summary row from a value and its baseline; `null` parts when not measured. */
export function row(figure: string, source: string, value: number | undefined, unit: string, baseline: { name: string; value: number } | undefined, target: Target): SummaryRow {
  const targetText = { "ratio-max": `<= ${target.limit}x`, "ratio-min": `>= ${target.limit}x`, "diff-max": `<= +${target.limit} ${unit}`, "value-max": `<= ${target.limit} ${unit}` }[target.kind];
  if (value === undefined || !Number.isFinite(value)) return { figure, value: null, unit, baseline: baseline ?? null, ratio: null, target: targetText, met: null, source };
  const ratio = !baseline ? null : target.kind === "diff-max" ? value - baseline.value : value / baseline.value;
  const met =
    target.kind === "value-max" ? value <= target.limit : ratio === null ? null : target.kind === "ratio-min" ? ratio >= target.limit : ratio <= target.limit;
  return { figure, value, unit, baseline: baseline ?? null, ratio, target: targetText, met, source };
}

/** Every figure of the table, from the results files as they are now. */
export function summaryRows(): SummaryRow[] {
  const boot = load("boot") as Record<string, any> | undefined;
  const life = load("lifecycle");
  const router = load("router");
  const density = load("density") as Record<string, any> | undefined;
  const rows: SummaryRow[] = [];

  const coldServing = find(life, /^cold boot -> serving/);
  const bare = coldServing?.baseline;
  const runTpl = find(life, /^aegis run -- true, from a template/);
  rows.push(row("cold `aegis run -- true` (AEGIS_TEMPLATES=0) / bare boot", "lifecycle", runTpl?.baseline?.value, "ms", bare, { kind: "ratio-max", limit: 1.5 }));
  const bootMed = boot?.boot_spawn_to_ready_ms?.median as number | undefined;
  const bareBoot = boot?.baseline_spawn_to_exit_ms?.median as number | undefined;
  rows.push(
    row("harness overhead: spawn -> ready minus bare boot, / bare", "boot", bootMed !== undefined && bareBoot !== undefined ? bootMed - bareBoot : undefined, "ms", bareBoot !== undefined ? { name: "bare boot", value: bareBoot } : undefined, { kind: "ratio-max", limit: 0.5 }),
  );
  rows.push(row("`aegis run -- true` from a template / bare boot", "lifecycle", runTpl?.value, "ms", bare, { kind: "ratio-max", limit: 0.3 }));
  const tplStart = boot?.template_start_to_first_exec_ms?.median as number | undefined;
  rows.push(row("  (backend) template start -> setup -> `true` / bare boot", "boot", tplStart, "ms", bareBoot !== undefined ? { name: "bare boot", value: bareBoot } : undefined, { kind: "ratio-max", limit: 0.3 }));
  const wake = find(life, /^idle-stopped -> first byte, snapshot restore \[vs cold\]/);
  rows.push(row("idle-stopped -> first byte (snapshot restore) / cold boot -> serving", "lifecycle", wake?.value, "ms", coldServing ? { name: "cold boot -> serving", value: coldServing.value } : undefined, { kind: "ratio-max", limit: 0.05 }));
  for (const c of [1, 16]) {
    const r = find(router, new RegExp(`^GET small, ${c} clients? \\(router\\)`));
    rows.push(row(`router HTTP throughput / direct, small requests, ${c} client${c > 1 ? "s" : ""}`, "router", r?.value, r?.unit ?? "req/s", r?.baseline, { kind: "ratio-min", limit: 0.9 }));
  }
  const dl = find(router, /^512 MB download \(router\)/);
  rows.push(row("router 512 MB download / direct", "router", dl?.value, dl?.unit ?? "MB/s", dl?.baseline, { kind: "ratio-min", limit: 0.9 }));
  const p50 = find(router, /^GET small p50, 1 client \(router\)/);
  rows.push(row("router added p50 latency, 1 client", "router", p50?.value, p50?.unit ?? "us", p50?.baseline, { kind: "diff-max", limit: 50 }));
  const uss = density?.uss_mb?.median as number | undefined;
  const rss = density?.rss_mb?.median as number | undefined;
  rows.push(row("host memory of an idle paused instance, 512 MB guest (USS)", "density", uss, "MB", rss !== undefined ? { name: "its RSS", value: rss } : undefined, { kind: "value-max", limit: 64 }));
  return rows;
}

function fmt(v: number): string {
  return Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2);
}

function main(): void {
  const rows = summaryRows();
  const lines = rows.map((r) => [
    r.figure,
    r.value === null ? `not measured (bench/${r.source}.ts)` : `${fmt(r.value)} ${r.unit}`,
    r.baseline ? `${fmt(r.baseline.value)} ${r.unit} (${r.baseline.name})` : "-",
    r.ratio === null ? "-" : r.target.includes("+") ? `${r.ratio >= 0 ? "+" : ""}${fmt(r.ratio)} ${r.unit}` : `${r.ratio.toFixed(2)}x`,
    r.target,
    r.met === null ? "-" : r.met ? "met" : "NOT met",
  ]);
  const header = ["figure", "value", "baseline (same run)", "ratio", "target", ""];
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const print = (cells: string[]) => console.log(cells.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd());
  const accel = detectAccel();
  // Under TCG only the ratios carry over to another machine; with KVM the absolute values are the product's own.
  console.log(`\nAegis performance summary (issue #19), accel ${accel.name}: ${accel.name === "tcg" ? "values are absolute but TCG-slow; compare the ratios" : "absolute values and ratios both hold"}`);
  print(header);
  print(widths.map((w) => "-".repeat(w)));
  for (const l of lines) print(l);
  const out = join(dir, "summary.json");
  Bun.write(out, `${JSON.stringify({ name: "summary", date: new Date().toISOString(), accel: accel.name, rows }, null, 2)}\n`);
  console.log(`\nwrote ${out}`);
}

if (import.meta.main) main();

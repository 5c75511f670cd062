/**
 * @module scripts/mutate
 * `make mutate`: mutation testing of the pure modules whose bugs a reviewer
 * would look for first (idle policy, route resolution, unpack path safety,
 * capabilities, secret sealing, argv, tether store, image config resolution,
 * network policy rules). StrykerJS mutates one module at a time and runs only
 * that module's unit tests per mutant (its `command` test runner, `bun test
 * <files>`), so a mutant costs one short `bun test`. The per-module score is
 * printed as a table and written to bench/results/mutation.json with the
 * surviving mutants (file:line, mutator, replacement) and the mutants
 * disabled in the source as equivalent (with the reason given there).
 *
 * Not part of CI's time budget: run it before resolving an issue that touches
 * these modules. Exits 1 when a module scores below {@link THRESHOLD}.
 *
 * Stryker runs under Bun (it requires Node >= 22; Bun reports a newer
 * version and runs it fine). Its tsconfig rewriting needs the classic
 * TypeScript JS API, which TypeScript 7 no longer ships, so it is pointed at
 * a file that does not exist; the sandbox needs no tsconfig changes because
 * `bun test` does not type-check.
 *
 * Usage: `bun run scripts/mutate.ts [module-name ...]` (default: all).
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "..");
const THRESHOLD = 85;

/** One module under mutation: the source to mutate and the tests that must kill its mutants. */
interface Module {
  name: string;
  /** Stryker `mutate` patterns (a file, or `file:start-end` for a line range). */
  mutate: string[];
  /** Unit test files run per mutant. */
  tests: string[];
}

/** The modules, each with the unit tests that describe its behaviour. */
export const MODULES: Module[] = [
  { name: "idle-policy", mutate: ["src/daemon/instances/idle.ts"], tests: ["test/unit/daemon/idle.test.ts"] },
  { name: "route-resolution", mutate: ["src/daemon/router/resolve.ts"], tests: ["test/unit/router/resolve.test.ts"] },
  { name: "unpack-path-safety", mutate: ["src/daemon/images/unpack-paths.ts"], tests: ["test/unit/images/unpack-paths.test.ts"] },
  { name: "capabilities", mutate: ["src/daemon/instances/capabilities.ts"], tests: ["test/unit/daemon/capabilities.test.ts"] },
  { name: "secret-cipher", mutate: ["src/daemon/secrets/cipher.ts"], tests: ["test/unit/daemon/secret-cipher.test.ts"] },
  { name: "argv", mutate: ["src/cli/argv.ts"], tests: ["test/unit/cli/argv.test.ts"] },
  { name: "tether-store", mutate: ["src/daemon/tether/store.ts"], tests: ["test/unit/daemon/tether-store.test.ts"] },
  { name: "image-config", mutate: ["src/daemon/images/process-spec.ts"], tests: ["test/unit/images/process-spec.test.ts"] },
  { name: "network-policy", mutate: ["src/api/network-policy.ts"], tests: ["test/unit/api/network-policy.test.ts"] },
];

/** Counts from one Stryker JSON report, and the score Stryker defines: detected / valid mutants. */
export interface ModuleScore {
  name: string;
  files: string[];
  tests: string[];
  score: number;
  killed: number;
  timeout: number;
  survived: number;
  noCoverage: number;
  errors: number;
  seconds: number;
  survivors: string[];
  equivalent: string[];
}

interface ReportMutant {
  mutatorName: string;
  replacement?: string;
  status: string;
  statusReason?: string;
  location: { start: { line: number; column: number } };
}

/** Score one Stryker JSON report (mutation-testing-report-schema). */
export function scoreReport(name: string, mod: Module, report: { files: Record<string, { mutants: ReportMutant[] }> }, seconds: number): ModuleScore {
  const s: ModuleScore = { name, files: Object.keys(report.files), tests: mod.tests, score: 0, killed: 0, timeout: 0, survived: 0, noCoverage: 0, errors: 0, seconds, survivors: [], equivalent: [] };
  for (const [file, { mutants }] of Object.entries(report.files)) {
    for (const m of mutants) {
      const where = `${file}:${m.location.start.line}:${m.location.start.column} ${m.mutatorName}${m.replacement !== undefined ? ` -> ${m.replacement.replace(/\s+/g, " ").slice(0, 80)}` : ""}`;
      if (m.status === "Killed") s.killed++;
      else if (m.status === "Timeout") s.timeout++;
      else if (m.status === "Survived") (s.survived++, s.survivors.push(where));
      else if (m.status === "NoCoverage") (s.noCoverage++, s.survivors.push(where));
      else if (m.status === "Ignored") s.equivalent.push(`${where} (${m.statusReason ?? "no reason given"})`);
      else s.errors++;
    }
  }
  const valid = s.killed + s.timeout + s.survived + s.noCoverage;
  s.score = valid === 0 ? 100 : Math.round(((s.killed + s.timeout) / valid) * 10000) / 100;
  return s;
}

async function runModule(mod: Module, work: string): Promise<ModuleScore> {
  for (const t of mod.tests) if (!existsSync(join(ROOT, t))) throw new Error(`mutate: test file ${t} of module ${mod.name} does not exist`);
  const reportFile = join(work, `${mod.name}.json`);
  const config = {
    testRunner: "command",
    commandRunner: { command: `bun test ${mod.tests.join(" ")}` },
    mutate: mod.mutate,
    reporters: ["json", "progress"],
    jsonReporter: { fileName: reportFile },
    coverageAnalysis: "off",
    concurrency: 2,
    timeoutMS: 10000,
    tempDirName: join(work, "sandbox"),
    cleanTempDir: "always",
    tsconfigFile: "no-tsconfig-rewrite.json",
    ignorePatterns: [".stryker-tmp", "bench", "docs", "packaging", "kits", "dist", "bin", ".aegis-dev", "test/e2e", "test/integration"],
    thresholds: { high: 90, low: THRESHOLD, break: null },
  };
  const configFile = join(work, `${mod.name}.stryker.json`);
  writeFileSync(configFile, JSON.stringify(config, null, 2));
  const t0 = performance.now();
  const proc = Bun.spawn([process.execPath, join(ROOT, "node_modules/@stryker-mutator/core/bin/stryker.js"), "run", configFile], {
    cwd: ROOT,
    stdout: "inherit",
    stderr: "inherit",
  });
  const code = await proc.exited;
  if (code !== 0) throw new Error(`mutate: Stryker failed on module ${mod.name} (exit ${code}); see its output above`);
  const seconds = Math.round((performance.now() - t0) / 100) / 10;
  return scoreReport(mod.name, mod, JSON.parse(readFileSync(reportFile, "utf8")), seconds);
}

function printTable(scores: ModuleScore[]): void {
  const header = ["module", "score", "killed", "timeout", "survived", "no cov", "equiv", "seconds"];
  const rows = scores.map((s) => [s.name, `${s.score.toFixed(2)} %`, s.killed, s.timeout, s.survived, s.noCoverage, s.equivalent.length, s.seconds].map(String));
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => console.log(cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  "));
  line(header);
  line(widths.map((w) => "-".repeat(w)));
  for (const r of rows) line(r);
}

async function main(): Promise<void> {
  const wanted = process.argv.slice(2);
  const unknown = wanted.filter((w) => !MODULES.some((m) => m.name === w));
  if (unknown.length) {
    console.error(`mutate: unknown module(s) ${unknown.map((u) => `"${u}"`).join(", ")}\nhint: choose from ${MODULES.map((m) => m.name).join(", ")}`);
    process.exit(2);
  }
  const mods = wanted.length ? MODULES.filter((m) => wanted.includes(m.name)) : MODULES;
  const work = join(ROOT, ".stryker-tmp");
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const t0 = performance.now();
  const scores: ModuleScore[] = [];
  for (const m of mods) scores.push(await runModule(m, work));
  const seconds = Math.round((performance.now() - t0) / 100) / 10;
  rmSync(work, { recursive: true, force: true });
  console.log("");
  printTable(scores);
  for (const s of scores) for (const v of s.survivors) console.log(`survived  ${s.name}  ${v}`);
  const total = scores.reduce((a, s) => ({ d: a.d + s.killed + s.timeout, v: a.v + s.killed + s.timeout + s.survived + s.noCoverage }), { d: 0, v: 0 });
  const overall = total.v === 0 ? 100 : Math.round((total.d / total.v) * 10000) / 100;
  console.log(`\noverall ${overall.toFixed(2)} % over ${total.v} mutants in ${seconds} s (threshold ${THRESHOLD} % per module)`);
  const out = {
    name: "mutation",
    date: new Date().toISOString(),
    host: { cpus: navigator.hardwareConcurrency, bun: Bun.version },
    tool: `StrykerJS ${JSON.parse(readFileSync(join(ROOT, "node_modules/@stryker-mutator/core/package.json"), "utf8")).version} (command runner, bun test)`,
    threshold: THRESHOLD,
    overall,
    seconds,
    partial: wanted.length > 0,
    modules: scores,
  };
  const dir = join(ROOT, "bench", "results");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "mutation.json"), `${JSON.stringify(out, null, 2)}\n`);
  const low = scores.filter((s) => s.score < THRESHOLD);
  if (low.length) {
    console.error(`mutate: ${low.map((s) => `${s.name} ${s.score} %`).join(", ")} below ${THRESHOLD} %\nhint: write behaviour tests that kill the survivors listed above`);
    process.exit(1);
  }
}

if (import.meta.main) main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});

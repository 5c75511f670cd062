/**
 * @module build
 * Builds the one Aegis executable with `bun build --compile` and creates the
 * role links beside it. Usage: `bun run build.ts [--target bun-linux-arm64] [--outdir bin]`.
 */
import { mkdirSync, rmSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import pkg from "./package.json" with { type: "json" };
import { writeDescriptor } from "./scripts/shim-proto.ts";

/** Names under which the binary is linked; argv[0] selects the role. */
export const ROLE_LINKS = ["aegisd", "aegis-gateway", "aegis-harness", "aegis-agent", "aegis-vmm-worker", "aegis-mcp-guest", "aegis-mcp", "containerd-shim-aegis-v2"] as const;

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<void> {
  const outdir = flag("--outdir") ?? "bin";
  const target = flag("--target");
  const version = process.env.AEGIS_VERSION ?? pkg.version;
  mkdirSync(outdir, { recursive: true });
  // The shim's protobuf descriptor comes from Debian's containerd .proto files when they are here.
  if (writeDescriptor()) process.stderr.write("generated src/shim/proto/containerd.gen.json from the containerd .proto files\n");
  const outfile = join(outdir, "aegis");
  const args = [
    "build",
    "--compile",
    "--no-compile-autoload-dotenv",
    "--no-compile-autoload-bunfig",
    // Bytecode halves start-up (aegis status: ~20 ms instead of ~40 ms; the
    // guest harness starts sooner too). It needs ESM output, no top-level
    // await, and import.meta only in src/paths.ts (STYLE rule 23). It does
    // work together with --splitting on Bun 1.4.5: in a TCG guest (JIT off,
    // warm page cache, 3 alternating runs each) the harness's whole import
    // graph was evaluated 1.04-1.43 s after process start with it and
    // 2.06-2.32 s without (issue 19, per-import marks).
    "--bytecode",
    // Code splitting: every role's lazily imported main (src/main.ts) becomes its own chunks
    // inside the one binary, so a role loads and links only its own code. The guest harness's
    // closure is 13 chunks / 230 KB of the 2.4 MB bundle; in a TCG guest (warm page cache,
    // alternating runs in one VM) `aegis __harness` up to its PID-1 check took 0.89-0.91x
    // the time of the single-bundle build, about 0.5 s less on the loaded build machine.
    "--splitting",
    "--format=esm",
    "--minify-syntax",
    "--minify-whitespace",
    `--define`,
    `BUILD_VERSION=${JSON.stringify(version)}`,
    ...(target ? [`--target=${target}`] : []),
    "src/main.ts",
    "--outfile",
    outfile,
  ];
  const proc = Bun.spawn(["bun", ...args], { stdout: "inherit", stderr: "inherit", stdin: "ignore" });
  const code = await proc.exited;
  if (code !== 0) throw new Error(`bun build failed with exit code ${code}`);
  for (const link of ROLE_LINKS) {
    const path = join(outdir, link);
    rmSync(path, { force: true });
    symlinkSync("aegis", path);
  }
  process.stderr.write(`built ${outfile} (${version}) and links: ${ROLE_LINKS.join(", ")}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`build failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});

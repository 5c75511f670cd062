/**
 * Helpers to drive the real compiled `bin/aegis` with a private AEGIS_HOME.
 * Integration and e2e tests never touch the user's ~/.aegis.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

/** Repository root. */
export const repoRoot = resolve(import.meta.dir, "..", "..");

/** The compiled binary under test. */
export function aegisBin(): string {
  const bin = join(repoRoot, "bin", "aegis");
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run 'make build' (or 'bun run build.ts') before the integration tests`);
  return bin;
}

/** Result of one CLI invocation. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A temporary AEGIS_HOME (short path: the socket must fit sun_path). */
export class TestHome {
  readonly dir = mkdtempSync(join(tmpdir(), "ag-"));

  /** Run `aegis ...args` against this home, draining both pipes. */
  async run(args: string[], opts: { stdin?: string | Uint8Array; env?: Record<string, string>; bin?: string } = {}): Promise<RunResult> {
    const proc = Bun.spawn([opts.bin ?? aegisBin(), ...args], {
      // Router port 0: tests never collide with each other or with a user's daemon on 8099.
      // AEGIS_WARM=0: no template build at each test daemon's start (the first boot builds it).
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root", AEGIS_HOME: this.dir, AEGIS_ROUTER_PORT: "0", AEGIS_E2B_PORT: "0", AEGIS_WARM: "0", ...opts.env },
      stdin: opts.stdin === undefined ? "ignore" : new Blob([opts.stdin]),
      stdout: "pipe",
      stderr: "pipe",
    });
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    return { code, stdout, stderr };
  }

  /**
   * Start a blocking serve command (`run --expose`, `app serve`) and resolve
   * once it printed "Press Ctrl+C to stop", with what it printed on stderr.
   */
  async startServing(args: string[]): Promise<{ proc: ReturnType<typeof Bun.spawn>; stderr: string }> {
    const proc = Bun.spawn([aegisBin(), ...args], {
      env: { PATH: process.env.PATH ?? "", AEGIS_HOME: this.dir, AEGIS_ROUTER_PORT: "0", AEGIS_E2B_PORT: "0" },
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    const reader = (proc.stderr as ReadableStream<Uint8Array>).getReader();
    let stderr = "";
    while (!stderr.includes("Press Ctrl+C to stop\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`aegis ${args.join(" ")} ended before serving: ${stderr}`);
      stderr += new TextDecoder().decode(value);
    }
    reader.releaseLock();
    return { proc, stderr };
  }

  /** Like {@link run} but throws unless the exit code is 0. */
  async ok(args: string[], opts: { stdin?: string | Uint8Array; env?: Record<string, string> } = {}): Promise<RunResult> {
    const r = await this.run(args, opts);
    if (r.code !== 0) throw new Error(`aegis ${args.join(" ")} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
    return r;
  }

  /**
   * Stop any daemon of this home and delete it. VMs outlive a killed aegisd
   * (live restore), so a test that ends with its daemon dead would leave
   * them running: anything still naming this home is killed, and said so
   * on stderr (a leak worth noticing, not hiding).
   */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.run(["down"]);
    const left = Bun.spawnSync(["pkill", "-KILL", "-e", "-f", `${this.dir}/`], { stdout: "pipe", stderr: "pipe" });
    if (left.exitCode === 0) process.stderr.write(`test home ${this.dir}: killed processes left behind after aegis down:\n${left.stdout.toString()}`);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

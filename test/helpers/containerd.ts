/**
 * @module test/helpers/containerd
 * Debian's containerd started by a test itself (no systemd): its own config,
 * root, state and sockets under a temporary directory, the CRI plugin off
 * unless asked for, and `bin/` first on its PATH so it finds
 * `containerd-shim-aegis-v2`. `ctr` runs against its socket. With `cri`, the
 * CRI plugin serves on the same socket with a runtime handler `aegis`
 * (`io.containerd.aegis.v2`), the given sandbox image (imported, never
 * pulled), CNI plugins from /usr/lib/cni and a CNI config dir of the test's. Disposal stops
 * containerd, unmounts whatever it left under the directory and removes it.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { repoRoot, type RunResult } from "./aegis.ts";

/** One containerd for one test. */
/** What the CRI plugin is configured with. */
export interface CriOptions {
  /** `sandbox_image`: must be imported into namespace k8s.io before a pod runs. */
  sandboxImage: string;
  /** Directory of the CNI network configs. */
  cniConfDir: string;
}

/** The CRI plugin's config section (runtime handler `aegis`, streaming on loopback). */
function criConfig(cri: CriOptions): string[] {
  const p = `[plugins."io.containerd.grpc.v1.cri"`;
  return [
    `${p}]`,
    `  sandbox_image = "${cri.sandboxImage}"`,
    `  stream_server_address = "127.0.0.1"`,
    `  stream_server_port = "0"`,
    `  enable_selinux = false`,
    `  disable_apparmor = true`,
    `  restrict_oom_score_adj = true`,
    `${p}.containerd]`,
    `  snapshotter = "overlayfs"`,
    `  default_runtime_name = "runc"`,
    `${p}.containerd.runtimes.runc]`,
    `  runtime_type = "io.containerd.runc.v2"`,
    `${p}.containerd.runtimes.aegis]`,
    `  runtime_type = "io.containerd.aegis.v2"`,
    // The pod's VM size travels as pod annotations (src/shim/pod-shape.ts).
    `  pod_annotations = ["io.aegis.*"]`,
    `${p}.cni]`,
    `  bin_dir = "/usr/lib/cni"`,
    `  conf_dir = "${cri.cniConfDir}"`,
  ];
}

export class TestContainerd {
  readonly dir = mkdtempSync(join(tmpdir(), "ctd-"));
  readonly socket = join(this.dir, "containerd.sock");
  private proc: ReturnType<typeof Bun.spawn> | null = null;

  constructor(
    /** The AEGIS_HOME the shim (and the aegisd it starts) uses. */
    readonly aegisHome: string,
    /** Enable the CRI plugin with these settings (off when absent). */
    private readonly cri?: CriOptions,
  ) {}

  /** Environment containerd (and so the shim) runs with. */
  env(): Record<string, string> {
    return { PATH: `${join(repoRoot, "bin")}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`, HOME: process.env.HOME ?? "/root", AEGIS_HOME: this.aegisHome, AEGIS_ROUTER_PORT: "0", AEGIS_E2B_PORT: "0", AEGIS_WARM: "0", AEGIS_BOOT_TIMEOUT_MS: "120000" };
  }

  /** Write the config and start containerd; resolves once its socket answers. */
  async start(): Promise<void> {
    const config = [
      "version = 2",
      `root = "${this.dir}/root"`,
      `state = "${this.dir}/state"`,
      ...(this.cri ? [] : [`disabled_plugins = ["io.containerd.grpc.v1.cri"]`]),
      "[grpc]",
      `  address = "${this.socket}"`,
      "[ttrpc]",
      `  address = "${this.socket}.ttrpc"`,
      "[debug]",
      `  address = "${this.dir}/debug.sock"`,
      `  level = "debug"`,
      ...(this.cri ? criConfig(this.cri) : []),
      "",
    ].join("\n");
    mkdirSync(join(this.dir, "root"), { recursive: true });
    writeFileSync(join(this.dir, "config.toml"), config);
    this.proc = Bun.spawn(["containerd", "--config", join(this.dir, "config.toml")], { env: this.env(), stdin: "ignore", stdout: Bun.file(join(this.dir, "containerd.log")), stderr: Bun.file(join(this.dir, "containerd.log")) });
    const deadline = Date.now() + 20_000;
    for (;;) {
      const r = await this.ctr(["version"]);
      if (r.code === 0) return;
      if (this.proc.exitCode !== null || Date.now() > deadline) throw new Error(`containerd did not start: ${r.stderr}\n${this.log().slice(-2000)}`);
      await Bun.sleep(100);
    }
  }

  /** containerd's log so far. */
  log(): string {
    try {
      return readFileSync(join(this.dir, "containerd.log"), "utf8");
    } catch {
      return "";
    }
  }

  /** Run `ctr` against this containerd, draining both pipes; `timeoutMs` kills it. */
  async ctr(args: string[], opts: { timeoutMs?: number; stdin?: string } = {}): Promise<RunResult> {
    const p = Bun.spawn(["ctr", "--address", this.socket, ...args], { env: this.env(), stdin: opts.stdin === undefined ? "ignore" : new Blob([opts.stdin]), stdout: "pipe", stderr: "pipe", timeout: opts.timeoutMs ?? 120_000, killSignal: "SIGKILL" });
    const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    return { code, stdout, stderr };
  }

  /** Start a long-running `ctr` command (`ctr events`) with piped output. */
  spawnCtr(args: string[]): ReturnType<typeof Bun.spawn> {
    return Bun.spawn(["ctr", "--address", this.socket, ...args], { env: this.env(), stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  }

  /** Mount points under this containerd's directory (what a leak looks like). */
  mounts(): string[] {
    return readFileSync("/proc/self/mounts", "utf8")
      .split("\n")
      .map((l) => l.split(" ")[1] ?? "")
      .filter((m) => m.startsWith(this.dir));
  }

  /** Pids of the shim processes serving this containerd (they name its socket in their arguments). */
  shimPids(): number[] {
    const out = Bun.spawnSync(["pgrep", "-f", `shim.*${this.dir}`]).stdout.toString().trim();
    return out ? out.split("\n").map(Number) : [];
  }

  /** Stop containerd, unmount what is left, remove the directory. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.proc) {
      this.proc.kill("SIGTERM");
      await this.proc.exited;
    }
    // Shims outlive containerd by design; after a failed test kill the ones naming this containerd.
    Bun.spawnSync(["pkill", "-KILL", "-f", `shim.*${this.dir}`]);
    for (const m of this.mounts().sort().reverse()) Bun.spawnSync(["umount", "-l", m]);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

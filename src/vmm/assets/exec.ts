/**
 * @module vmm/assets/exec
 * Running the host tools the builder needs (apt-get, dpkg-deb, ldd,
 * mkfs.ext4, busybox) with drained pipes, an explicit environment and
 * stdin ignored; a failure throws with the tool's stderr.
 */
import { existsSync } from "node:fs";

/** Locate a tool on PATH or in the sbin directories (mkfs.ext4 lives in /usr/sbin, often off a user's PATH). */
export function findTool(name: string): string {
  const dirs = [...(process.env.PATH ?? "").split(":"), "/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"];
  for (const d of dirs) {
    if (d && existsSync(`${d}/${name}`)) return `${d}/${name}`;
  }
  throw new Error(`${name} not found on PATH or in /usr/sbin\nhint: install it (Debian: apt-get install ${toolPackage(name)})`);
}

function toolPackage(name: string): string {
  const map: Record<string, string> = {
    "mkfs.ext4": "e2fsprogs",
    busybox: "busybox-static",
    "dpkg-deb": "dpkg",
    "apt-get": "apt",
    "apt-cache": "apt",
    ldd: "libc-bin",
  };
  return map[name] ?? name;
}

/** Run `argv` to completion; returns stdout. Throws with stderr on a non-zero exit. */
export async function run(argv: string[], opts: { cwd?: string } = {}): Promise<string> {
  const tool = argv[0]!.includes("/") ? argv[0]! : findTool(argv[0]!);
  const proc = Bun.spawn([tool, ...argv.slice(1)], {
    cwd: opts.cwd,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", LANG: "C", LC_ALL: "C", HOME: process.env.HOME ?? "/" },
  });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`${argv.join(" ")} failed (exit ${code}): ${err.trim() || out.trim()}`);
  return out;
}

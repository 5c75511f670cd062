/**
 * @module vmm/assets/ldd
 * Which shared libraries the harness binary needs in the guest. We ask the
 * host's `ldd` (the binary is built for the host's glibc) and copy exactly
 * those files, each at the path ldd printed, including the loader at its
 * absolute path (`/lib64/ld-linux-x86-64.so.2`): the ELF interpreter path is
 * absolute, and running the binary through ld.so instead would break Bun's
 * `/proc/self/exe` payload lookup.
 */
import { run } from "./exec.ts";

/** Parse `ldd` output into absolute library paths (vdso and "not found" lines excluded; "not found" throws). */
export function parseLdd(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("linux-vdso") || line.startsWith("linux-gate")) continue;
    if (line.includes("not found")) throw new Error(`missing shared library: ${line}`);
    if (line === "statically linked" || line.includes("not a dynamic executable")) continue;
    const arrow = line.match(/=>\s*(\S+)\s+\(0x/);
    if (arrow) {
      out.push(arrow[1]!);
      continue;
    }
    const direct = line.match(/^(\/\S+)\s+\(0x/);
    if (direct) out.push(direct[1]!);
  }
  return [...new Set(out)];
}

/** The shared libraries `binary` loads, via the host's ldd. */
export async function sharedLibraries(binary: string): Promise<string[]> {
  try {
    return parseLdd(await run(["ldd", binary]));
  } catch (err) {
    // ldd exits 1 for a static executable, which simply needs no libraries.
    if (err instanceof Error && err.message.includes("not a dynamic executable")) return [];
    throw err;
  }
}

/**
 * @module vmm/libkrun-path
 * Where libkrun may live: `AEGIS_LIBKRUN`, then the paths the spec's doctor
 * lists, then the Linux library directories distributions use.
 */
import { existsSync } from "node:fs";

/** Candidate library paths, in search order. */
export function libkrunCandidates(env = process.env): string[] {
  const fromEnv = env.AEGIS_LIBKRUN ? [env.AEGIS_LIBKRUN] : [];
  return [
    ...fromEnv,
    "/opt/homebrew/lib/libkrun.dylib",
    "/usr/local/lib/libkrun.dylib",
    "/usr/lib/libkrun.so",
    "/usr/lib/libkrun.so.1",
    "/usr/local/lib/libkrun.so",
    "/usr/local/lib/libkrun.so.1",
    "/usr/lib64/libkrun.so",
    "/usr/lib64/libkrun.so.1",
    "/usr/lib/x86_64-linux-gnu/libkrun.so.1",
    "/usr/lib/aarch64-linux-gnu/libkrun.so.1",
  ];
}

/** The first existing candidate, or null. */
export function findLibkrun(env = process.env): string | null {
  return libkrunCandidates(env).find((p) => existsSync(p)) ?? null;
}

/**
 * @module vmm/select
 * Which VM backend this host uses, and why (the reason is what `aegis
 * status --json` shows as `backend_reason` and what `aegis doctor` prints):
 * - `AEGIS_BACKEND=qemu|libkrun` forces one. A forced libkrun that does not
 *   load is an error (`BackendUnavailableError`) with the loader's message,
 *   never a silent fallback; any other value is an error too.
 * - Otherwise libkrun when the library loads (found by libkrun-path.ts and
 *   its required symbols bound by one dlopen, ffi/libkrun.ts), else QEMU
 *   when `qemu-system-<arch>` is on PATH, else none.
 * Probing only dlopens the library (and closes it); nothing in the daemon
 * ever calls `krun_start_enter`.
 *
 * Guest assets are built lazily on the first boot (under AEGIS_HOME/guest,
 * memoised), so selecting a backend is cheap and synchronous. The harness
 * binary is this executable when compiled; from source (`bun src/main.ts`)
 * it is `AEGIS_HARNESS_BINARY` or the repo's `bin/aegis`.
 */
import { join } from "node:path";
import { ensureGuestAssets, type GuestAssets } from "./assets/index.ts";
import { isCompiled, selfExe, sourceRoot, statePaths } from "../paths.ts";
import { detectAccel } from "./accel.ts";
import type { Backend, BackendCapabilities } from "./backend.ts";
import { openLibkrun } from "../../ffi/libkrun.ts";
import { LibkrunBackend, type KrunGuest } from "./libkrun.ts";
import { findLibkrun, libkrunCandidates } from "./libkrun-path.ts";
import { ensureKrunRoot } from "./libkrun-root.ts";
import { QemuBackend } from "./qemu.ts";

/** The selection result. */
export interface BackendSelection {
  backend: Backend | null;
  name: "qemu" | "libkrun" | "none";
  reason: string;
  accel: string;
  capabilities: BackendCapabilities;
}

/** The executable used as the guest harness. */
export function harnessBinary(): string {
  return process.env.AEGIS_HARNESS_BINARY || (isCompiled ? selfExe : join(sourceRoot, "bin", "aegis"));
}

/** A memoised provider of the guest assets for AEGIS_HOME (progress goes to `log`). */
export function guestAssetsProvider(log: (msg: string) => void = () => {}): () => Promise<GuestAssets> {
  let pending: Promise<GuestAssets> | undefined;
  return () => {
    pending ??= ensureGuestAssets({ dir: statePaths().guest, binary: harnessBinary(), progress: log }).catch((err: unknown) => {
      pending = undefined; // let the next boot retry (e.g. after `apt-get install`)
      throw err;
    });
    return pending;
  };
}

/** A backend was forced with AEGIS_BACKEND but cannot be used here. */
export class BackendUnavailableError extends Error {
  override name = "BackendUnavailableError";
  constructor(
    readonly backend: string,
    readonly reason: string,
    hint: string,
  ) {
    super(`AEGIS_BACKEND=${backend}: ${reason}\nhint: ${hint}`);
  }
}

/** Result of trying to load libkrun. */
export type LibkrunProbe = { ok: true; path: string; optional: string[] } | { ok: false; path: string | null; reason: string };

/** Find libkrun and dlopen its required symbols (then close it). */
export function probeLibkrun(env = process.env): LibkrunProbe {
  const path = findLibkrun(env);
  if (!path) return { ok: false, path: null, reason: `libkrun not found (searched ${libkrunCandidates(env).length} paths${env.AEGIS_LIBKRUN ? `, starting with AEGIS_LIBKRUN=${env.AEGIS_LIBKRUN}` : ""})` };
  try {
    const lib = openLibkrun(path);
    const optional = lib.optionalSymbols;
    lib.close();
    return { ok: true, path, optional };
  } catch (err) {
    if (!(err instanceof Error && err.name === "LibkrunLoadError")) throw err;
    return { ok: false, path, reason: `libkrun at ${path} does not load: ${(err as Error & { reason: string }).reason}` };
  }
}

/** The backend to use, from AEGIS_BACKEND and what loads; pure, for tests. */
export function chooseBackend(forced: string | undefined, libkrun: LibkrunProbe, qemu: string | null): { name: "qemu" | "libkrun" | "none"; reason: string } {
  const arch = process.arch === "arm64" ? "aarch64" : "x86_64";
  const krunNote = libkrun.ok ? `libkrun loads from ${libkrun.path}` : libkrun.reason;
  if (forced !== undefined && forced !== "" && forced !== "qemu" && forced !== "libkrun") {
    throw new BackendUnavailableError(forced, "unknown backend", "use AEGIS_BACKEND=qemu or AEGIS_BACKEND=libkrun, or unset it to choose automatically");
  }
  if (forced === "libkrun") {
    if (!libkrun.ok) throw new BackendUnavailableError("libkrun", libkrun.reason, "install libkrun (and libkrunfw) or set AEGIS_LIBKRUN to the library; AEGIS_BACKEND=qemu uses QEMU instead");
    return { name: "libkrun", reason: `AEGIS_BACKEND=libkrun: ${krunNote}` };
  }
  if (forced === "qemu") {
    if (!qemu) throw new BackendUnavailableError("qemu", `qemu-system-${arch} not found on PATH`, "apt-get install qemu-system-x86 (or qemu-system-arm), or unset AEGIS_BACKEND");
    return { name: "qemu", reason: `AEGIS_BACKEND=qemu: using QEMU (${qemu})` };
  }
  if (libkrun.ok) return { name: "libkrun", reason: `${krunNote}; using libkrun (set AEGIS_BACKEND=qemu for QEMU)` };
  if (qemu) return { name: "qemu", reason: `${krunNote}; using QEMU (${qemu})` };
  return { name: "none", reason: `${krunNote}; qemu-system-${arch} not found on PATH` };
}

/** A memoised provider of the libkrun guest (root directory + base image) built from the guest assets. */
export function krunGuestProvider(log?: (msg: string) => void): () => Promise<KrunGuest> {
  const assets = guestAssetsProvider(log);
  let pending: Promise<KrunGuest> | undefined;
  return () => {
    pending ??= (async () => {
      const a = await assets();
      return { rootDir: await ensureKrunRoot(a, harnessBinary()), baseRootfs: a.baseRootfs };
    })().catch((err: unknown) => {
      pending = undefined; // let the next boot retry
      throw err;
    });
    return pending;
  };
}

/** Pick the backend for this host; throws `BackendUnavailableError` when AEGIS_BACKEND forces one that cannot run. */
export function selectBackend(opts: { log?: (msg: string, fields?: Record<string, unknown>) => void; env?: NodeJS.ProcessEnv } = {}): BackendSelection {
  const env = opts.env ?? process.env;
  const none: BackendCapabilities = { pauseResume: false, memorySnapshots: false, diskLayers: false };
  const arch = process.arch === "arm64" ? "aarch64" : "x86_64";
  const forced = env.AEGIS_BACKEND;
  // A forced QEMU does not need libkrun probed (and must not fail because of it).
  const libkrun: LibkrunProbe = forced === "qemu" ? { ok: false, path: null, reason: "libkrun not probed" } : probeLibkrun(env);
  const qemu = Bun.which(`qemu-system-${arch}`);
  const choice = chooseBackend(forced, libkrun, qemu);
  if (choice.name === "libkrun" && libkrun.ok) {
    const backend = new LibkrunBackend({ library: libkrun.path, guest: krunGuestProvider(opts.log), log: opts.log });
    const accel = process.platform === "darwin" ? "hvf" : "kvm";
    return { backend, name: "libkrun", reason: choice.reason, accel, capabilities: backend.capabilities };
  }
  if (choice.name === "none" || !qemu) return { backend: null, name: "none", reason: choice.reason, accel: "none", capabilities: none };
  const accel = detectAccel();
  const backend = new QemuBackend({ assets: guestAssetsProvider(opts.log), qemuBinary: qemu, arch, accel, home: statePaths().home, log: opts.log });
  return { backend, name: "qemu", reason: `${choice.reason} with ${accel.name}: ${accel.reason}`, accel: accel.name, capabilities: backend.capabilities };
}

/**
 * @module vmm/select
 * Which VM backend this host uses. libkrun is preferred where it exists (a
 * later issue); today the choice is QEMU when `qemu-system-<arch>` is on
 * PATH, else none (with the reason, for `aegis doctor` and `/v1/status`).
 *
 * The QEMU backend builds its guest assets lazily on the first boot (under
 * AEGIS_HOME/guest, memoised), so selecting a backend is cheap and
 * synchronous. The harness binary is this executable when compiled; from
 * source (`bun src/main.ts`) it is `AEGIS_HARNESS_BINARY` or the repo's
 * `bin/aegis`.
 */
import { join } from "node:path";
import { ensureGuestAssets, type GuestAssets } from "../../guest/assets/index.ts";
import { isCompiled, selfExe, sourceRoot, statePaths } from "../paths.ts";
import { detectAccel } from "./accel.ts";
import type { Backend, BackendCapabilities } from "./backend.ts";
import { findLibkrun } from "./libkrun-path.ts";
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

/** Pick the backend for this host. */
export function selectBackend(opts: { log?: (msg: string) => void } = {}): BackendSelection {
  const none: BackendCapabilities = { pauseResume: false, memorySnapshots: false, diskLayers: false };
  const libkrun = findLibkrun();
  const libkrunNote = libkrun ? `libkrun at ${libkrun} is not supported yet` : "libkrun not found";
  const arch = process.arch === "arm64" ? "aarch64" : "x86_64";
  const qemu = Bun.which(`qemu-system-${arch}`);
  if (!qemu) {
    return { backend: null, name: "none", reason: `${libkrunNote}; qemu-system-${arch} not found on PATH`, accel: "none", capabilities: none };
  }
  const accel = detectAccel();
  const backend = new QemuBackend({ assets: guestAssetsProvider(opts.log), qemuBinary: qemu, arch, accel });
  return {
    backend,
    name: "qemu",
    reason: `${libkrunNote}; using QEMU (${qemu}) with ${accel.name}: ${accel.reason}`,
    accel: accel.name,
    capabilities: backend.capabilities,
  };
}

/**
 * @module daemon/main
 * Entry of the `aegisd` role: start the daemon, stop it on SIGTERM/SIGINT.
 */
import { Daemon } from "./daemon.ts";

/** Run aegisd in the foreground until signalled. */
export async function main(argv: string[]): Promise<void> {
  if (argv.length > 0 && argv[0] !== "--foreground") {
    process.stderr.write(`aegisd: unexpected argument "${argv[0]}" (aegisd takes no arguments; use 'aegis up')\n`);
    process.exit(2);
  }
  const daemon = new Daemon();
  // A daemon must outlive a bug in one request or one VM's bookkeeping: log it and carry on.
  process.on("unhandledRejection", (reason: unknown) => {
    daemon.log.error("unhandled rejection", { error: reason instanceof Error ? (reason.stack ?? reason.message) : String(reason) });
  });
  try {
    await daemon.start();
  } catch (err) {
    process.stderr.write(`aegisd: ${(err as Error).message}\n`);
    process.exit(1);
  }
  // SIGTERM (an upgrade, a service manager's stop, `aegis down --keep-vms`) leaves the VMs running for the
  // next aegisd; SIGINT (`aegis down`) stops them (see Daemon.stop).
  const shutdown = (signal: string) => {
    daemon.stop(signal, { keepVms: signal === "SIGTERM" }).then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`aegisd: shutdown failed: ${String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
}

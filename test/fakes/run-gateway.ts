/**
 * Runs the gateway from source in its own process, the way the real binary's
 * `aegis-gateway` role will.
 */
import { main } from "../../src/gateway/main.ts";

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`aegis-gateway: fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});

/**
 * Runs the agent runtime from source in its own process, the way the real
 * binary's `aegis-agent` role will (tests set AEGIS_AGENT_PORT=0 and read the
 * bound port from the third start line).
 */
import { main } from "../../guest/agent/main.ts";

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`aegis-agent: fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});

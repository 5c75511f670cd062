/**
 * @module test/helpers/free-port
 * A loopback TCP port nothing listens on right now (the kernel picks it), for
 * tests and benchmarks that must pass a fixed port to aegisd (the router port
 * kept across a restart, an `--expose PUBLIC:GUEST` port).
 */
import { createServer } from "node:net";

/** A free port on 127.0.0.1 (free when returned; the caller binds it soon after). */
export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/**
 * @module daemon/instances/ports
 * Free host ports for QEMU's port forwards (hostfwd) on 127.0.0.1.
 */
import { createServer } from "node:net";

/** Ask the kernel for a free TCP port on 127.0.0.1 (bind to port 0, read it, release it). */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}

/**
 * @module vmm/network/relay
 * Byte relays between network namespaces, in aegisd (no extra process per
 * connection): `host 127.0.0.1:PORT -> namespace IP:PORT` for QEMU's port
 * forwards, which now listen inside the VM's namespace, and
 * `unix socket -> host 127.0.0.1:PORT` for `--allow host:PORT` (a socat in
 * the namespace listens on its 127.0.0.1:PORT, which the guest reaches as
 * 10.0.2.2:PORT, and connects to that socket: filesystem sockets cross
 * namespaces). node:net's `pipe` gives backpressure both ways; listeners
 * bind exclusively (no SO_REUSEPORT), so a taken port fails loudly.
 */
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { describePortInUse } from "../../control/port-claims.ts";

/** Where a relay connects to. */
export type RelayTarget = { host: string; port: number };

function join(a: Socket, b: Socket): void {
  a.pipe(b);
  b.pipe(a);
  const done = () => {
    a.destroy();
    b.destroy();
  };
  a.on("error", done);
  b.on("error", done);
  a.on("close", done);
  b.on("close", done);
}

/** A listening relay. */
export class Relay {
  private readonly sockets = new Set<Socket>();
  private constructor(private readonly server: Server) {}

  /**
   * Listen on `listen` (TCP host:port or a unix socket path) and relay every connection to `target`.
   * @throws Error naming the port (and its holder) when it cannot be bound
   */
  static async start(listen: { host: string; port: number } | { path: string }, target: RelayTarget): Promise<Relay> {
    let relay: Relay | undefined;
    const server = createServer({ allowHalfOpen: true }, (client) => {
      relay?.sockets.add(client);
      client.on("close", () => relay?.sockets.delete(client));
      const upstream = createConnection({ host: target.host, port: target.port, allowHalfOpen: true });
      join(client, upstream);
    });
    relay = new Relay(server);
    await new Promise<void>((resolve, reject) => {
      server.once("error", (err: NodeJS.ErrnoException) => {
        if ("port" in listen && err.code === "EADDRINUSE") reject(new Error(`cannot relay ${listen.host}:${listen.port}: ${describePortInUse(listen.host, listen.port)}`));
        else reject(err);
      });
      if ("path" in listen) server.listen(listen.path, resolve);
      else server.listen({ host: listen.host, port: listen.port, exclusive: true }, resolve);
    });
    return relay;
  }

  /** Stop listening and cut the relayed connections. */
  close(): void {
    this.server.close();
    for (const s of this.sockets) s.destroy();
  }
}

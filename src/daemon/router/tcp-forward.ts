/**
 * @module daemon/router/tcp-forward
 * The raw TCP listener of one `--expose PUBLIC:GUEST` mapping: every accepted
 * connection becomes a {@link TcpPipe} to the instance's guest port, waking
 * the instance on connect.
 */
import type { TCPSocketListener } from "bun";
import { Conflict } from "../../api/errors.ts";
import { describePortInUse } from "../../control/port-claims.ts";
import { causeOf } from "./responses.ts";
import { type PipeContext, TcpPipe } from "./tcp-pipe.ts";
import type { RouteTarget } from "./types.ts";

/** A listening TCP forward. */
export class TcpForward {
  private constructor(
    readonly target: RouteTarget,
    private readonly listener: TCPSocketListener<TcpPipe | undefined>,
  ) {}

  /** The port actually listened on. */
  get port(): number {
    return this.listener.port;
  }

  /**
   * Listen on `host:publicPort` (0 = a free port).
   * @throws Conflict when the port cannot be bound (in use, privileged)
   */
  static listen(host: string, publicPort: number, target: RouteTarget, ctx: PipeContext): TcpForward {
    let listener: TCPSocketListener<TcpPipe | undefined>;
    try {
      listener = Bun.listen<TcpPipe | undefined>({
        hostname: host,
        port: publicPort,
        allowHalfOpen: true,
        exclusive: true,
        data: undefined,
        socket: {
          open(socket) {
            socket.data = new TcpPipe(socket as never, target, listener.port, ctx);
          },
          data: (socket, chunk) => socket.data?.onClientData(chunk),
          drain: (socket) => socket.data?.onClientDrain(),
          end: (socket) => socket.data?.onClientEnd(),
          close: (socket, err) => socket.data?.onClientClose(err),
          error: (socket, err) => ctx.log("router: TCP forward client socket error", { instanceId: target.instanceId, publicPort, remote: socket.remoteAddress, error: causeOf(err) }),
        },
      });
    } catch (err) {
      throw new Conflict(
        `cannot listen on ${host}:${publicPort} to forward to guest port ${target.guestPort} of instance "${target.instanceId}": ${describePortInUse(host, publicPort)} (${causeOf(err)})`,
        "another process (or another --expose) uses that port; pick another PUBLIC port with --expose PUBLIC:GUEST",
      );
    }
    return new TcpForward(target, listener);
  }

  /** Stop listening and close the connections it accepted. */
  stop(): void {
    this.listener.stop(true);
  }
}

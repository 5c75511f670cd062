/**
 * @module guest/harness/tether-relay
 * The harness end of the tether: host -> guest frames (from the control
 * channel) go to the agent listening on 127.0.0.1:7778 as NDJSON lines, and
 * every line the agent writes back is a guest -> host frame for the host.
 *
 * The agent may not be listening yet (it boots after the harness), so frames
 * wait in order in a queue and the relay reconnects with a short backoff
 * until they are delivered; nothing is dropped silently (a frame that cannot
 * be parsed back from the agent is reported in the guest log).
 *
 * Lines from the agent are at most {@link AGENT_LINE_MAX_BYTES} (a frame
 * is at most 1 MiB of JSON, and the host refuses larger ones anyway); a
 * longer line is dropped without being buffered and reported once.
 */
import type { Socket } from "bun";
import { LineSplitter } from "../../src/api/jsonrpc.ts";
import { MAX_FRAME_BYTES } from "../../src/api/schema/guest-wire.ts";
import { clip } from "../../src/api/untrusted-text.ts";

/** Longest line accepted from the agent: a largest frame plus room for the envelope. */
export const AGENT_LINE_MAX_BYTES = MAX_FRAME_BYTES + 64 * 1024;

/** Where the agent listens inside the guest. */
export const AGENT_PORT = 7778;

/** Relays tether frames between the control channel and the in-guest agent. */
export class TetherRelay {
  private socket: Socket<undefined> | null = null;
  private connecting = false;
  private readonly queue: string[] = [];
  private readonly splitter = new LineSplitter({
    maxLineBytes: AGENT_LINE_MAX_BYTES,
    onOverlong: () => this.log(`tether: agent sent a line over ${AGENT_LINE_MAX_BYTES} bytes; dropped`),
  });
  private retryMs = 100;

  constructor(
    private readonly toHost: (frame: Record<string, unknown>) => void,
    private readonly log: (msg: string) => void,
    private readonly port = AGENT_PORT,
  ) {}

  /** The highest host -> guest seq passed on (ingress seqs only grow per instance). */
  private lastSeq = 0;

  /** Queue a host -> guest frame for the agent and make sure a connection is coming; one already passed on (by seq) is dropped. */
  deliver(frame: Record<string, unknown>): void {
    // A new aegisd delivers again what the previous one may have written just before it died.
    if (typeof frame.seq === "number") {
      if (frame.seq <= this.lastSeq) {
        this.log(`tether: frame ${frame.seq} already delivered; dropped`);
        return;
      }
      this.lastSeq = frame.seq;
    }
    this.queue.push(`${JSON.stringify(frame)}\n`);
    this.flush();
  }

  private flush(): void {
    if (!this.socket) {
      this.connect();
      return;
    }
    while (this.queue.length > 0) {
      const line = this.queue[0]!;
      const written = this.socket.write(line);
      if (written < Buffer.byteLength(line)) {
        // Partial write: keep the rest at the head and wait for drain.
        this.queue[0] = Buffer.from(line).subarray(written).toString();
        return;
      }
      this.queue.shift();
    }
  }

  private connect(): void {
    if (this.connecting || this.socket) return;
    this.connecting = true;
    Bun.connect({
      hostname: "127.0.0.1",
      port: this.port,
      socket: {
        open: (s) => {
          this.socket = s;
          this.connecting = false;
          this.retryMs = 100;
          this.flush();
        },
        data: (_s, data) => this.onData(data),
        drain: () => this.flush(),
        close: () => this.lost("agent closed the tether connection"),
        error: (_s, err) => this.lost(`tether connection error: ${err.message}`),
      },
    }).catch((err: unknown) => {
      this.connecting = false;
      this.retryLater(err instanceof Error ? err.message : String(err));
    });
  }

  private lost(reason: string): void {
    this.socket = null;
    this.connecting = false;
    if (this.queue.length > 0) this.retryLater(reason);
  }

  private retryLater(reason: string): void {
    if (this.retryMs >= 3200) this.log(`tether: agent on 127.0.0.1:${this.port} not reachable (${reason}); ${this.queue.length} frame(s) waiting`);
    const delay = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, 3200);
    setTimeout(() => this.connect(), delay);
  }

  private onData(data: Uint8Array): void {
    for (const line of this.splitter.push(data)) {
      try {
        const frame = JSON.parse(line) as unknown;
        if (typeof frame === "object" && frame !== null && !Array.isArray(frame)) this.toHost(frame as Record<string, unknown>);
        else this.log(`tether: agent sent a non-object line: ${clip(line)}`);
      } catch (err) {
        this.log(`tether: agent sent invalid JSON (${clip((err as Error).message)}): ${clip(line)}`);
      }
    }
  }
}

/**
 * @module guest/agent/wire
 * The harness <-> agent wire: a TCP listener on 127.0.0.1:7778 inside the VM.
 * Both directions are NDJSON, one tether frame per line (UTF-8, `\n`).
 *
 * The harness may connect more than once (a reconnect after it restarts, or a
 * second connection while the first is half-dead). Host -> guest frames are
 * accepted from every connection. Guest -> host frames go to the most recently
 * opened connection that is still writable; while none is, they are buffered
 * (bounded; an overflow is logged, never silent) and flushed in order to the
 * next connection.
 */
import { createServer, type Server, type Socket } from "node:net";
import { TetherIngress, type TetherEgressDraft } from "../../src/api/schema/tether.ts";
import type { AgentLog } from "./log.ts";

/** Longest accepted line (a frame's text is at most 1 MiB; JSON escaping may double it). */
export const MAX_LINE_BYTES = 4 * 1024 * 1024;
/** Most guest -> host frames kept while no harness is connected. */
export const MAX_BUFFERED_FRAMES = 10_000;

/** Options of {@link TetherWire}. */
export interface WireOptions {
  host: string;
  port: number;
  onFrame: (frame: TetherIngress) => void;
  log: AgentLog;
}

/** The agent's TCP endpoint. */
export class TetherWire {
  private server: Server | undefined;
  private readonly sockets: Socket[] = [];
  private readonly pending: string[] = [];
  private dropped = 0;

  constructor(private readonly opts: WireOptions) {}

  /** Start listening; resolves with the bound port. */
  listen(): Promise<number> {
    const server = createServer((socket) => this.accept(socket));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.opts.port, this.opts.host, () => {
        server.off("error", reject);
        server.on("error", (err) => this.opts.log.error(`listener: ${err.message}`));
        const addr = server.address();
        resolve(typeof addr === "object" && addr ? addr.port : this.opts.port);
      });
    });
  }

  /** Send one guest -> host frame (or buffer it until a harness connects). */
  send(frame: TetherEgressDraft): void {
    const line = `${JSON.stringify(frame)}\n`;
    const socket = this.liveSocket();
    if (socket) {
      socket.write(line);
      return;
    }
    this.pending.push(line);
    if (this.pending.length > MAX_BUFFERED_FRAMES) {
      this.pending.shift();
      if (this.dropped++ % 1000 === 0) this.opts.log.error(`no harness connected: dropped the oldest buffered frame (${this.dropped} so far)`);
    }
  }

  /** Number of frames waiting for a connection. */
  get buffered(): number {
    return this.pending.length;
  }

  /** Stop listening and close every connection. */
  async close(): Promise<void> {
    for (const s of this.sockets) s.end();
    const server = this.server;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private liveSocket(): Socket | undefined {
    for (let i = this.sockets.length - 1; i >= 0; i--) {
      const s = this.sockets[i] as Socket;
      if (!s.destroyed && s.writable) return s;
    }
    return undefined;
  }

  private accept(socket: Socket): void {
    const peer = `${socket.remoteAddress}:${socket.remotePort}`;
    this.opts.log.info(`harness connected from ${peer}`);
    socket.setNoDelay(true);
    this.sockets.push(socket);
    if (this.pending.length > 0) {
      this.opts.log.info(`flushing ${this.pending.length} buffered frame(s)`);
      for (const line of this.pending.splice(0)) socket.write(line);
    }
    let buf = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      buf += chunk;
      let nl = buf.indexOf("\n");
      while (nl !== -1) {
        this.line(buf.slice(0, nl), peer);
        buf = buf.slice(nl + 1);
        nl = buf.indexOf("\n");
      }
      if (buf.length > MAX_LINE_BYTES) {
        this.opts.log.error(`${peer}: line longer than ${MAX_LINE_BYTES} bytes without a newline; closing the connection`);
        socket.destroy();
      }
    });
    socket.on("end", () => {
      if (buf.trim() !== "") this.line(buf, peer);
      buf = "";
      socket.end();
    });
    socket.on("error", (err) => this.opts.log.warn(`${peer}: ${err.message}`));
    socket.on("close", () => {
      const i = this.sockets.indexOf(socket);
      if (i !== -1) this.sockets.splice(i, 1);
      this.opts.log.info(`harness connection ${peer} closed`);
    });
  }

  private line(raw: string, peer: string): void {
    const text = raw.trim();
    if (text === "") return;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      this.opts.log.warn(`${peer}: ignoring a line that is not JSON (${(err as Error).message})`);
      return;
    }
    const parsed = TetherIngress.safeParse(value);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      this.opts.log.warn(`${peer}: ignoring an invalid frame: ${issue ? `${issue.path.join(".") || "frame"}: ${issue.message}` : "invalid"}`);
      return;
    }
    this.opts.onFrame(parsed.data);
  }
}

/**
 * @module vmm/network/dns-tcp
 * DNS over TCP for a VM's resolver (dns.ts): a guest resolver falls back to
 * TCP for a truncated UDP answer, and some (`options use-vc`, Go's, dig
 * +tcp) use it outright. slirp passes the guest's TCP to 10.0.2.3:53 to the
 * namespace's nameserver, the host end of the VM's veth, where this listens.
 * Each query (RFC 1035 §4.2.2 framing: a 2-byte length, then the message) is
 * forwarded to the upstream resolver over its own TCP connection, and its
 * answer is recorded in the VM's domain-rule sets (dns.ts `recordAnswer`)
 * before the guest gets it, exactly as over UDP.
 *
 * Bounds (the guest is hostile): at most {@link MAX_CONNECTIONS} connections
 * per VM, each closed after {@link IDLE_MS} without a complete query;
 * queries over 4096 bytes close the connection; queries on a connection are
 * answered in order, at most {@link MAX_QUEUED} waiting; each upstream
 * exchange has {@link UPSTREAM_TIMEOUT_MS} and an answer of at most 65535
 * bytes (what the framing can carry).
 */
import { createConnection, createServer, type Server, type Socket } from "node:net";

/** Concurrent TCP connections one VM may hold to its resolver. */
export const MAX_CONNECTIONS = 32;
/** A connection with no complete query for this long is closed. */
export const IDLE_MS = 10_000;
/** Queries one connection may have waiting for their answers. */
export const MAX_QUEUED = 8;
/** Largest query accepted (as over UDP). */
export const MAX_QUERY = 4096;
/** How long one upstream exchange may take. */
export const UPSTREAM_TIMEOUT_MS = 5000;

/** Split complete frames off `buf`; `rest` is the incomplete tail; `bad`: a length no query can have. Pure. */
export function takeFrames(buf: Buffer): { frames: Buffer[]; rest: Buffer; bad: boolean } {
  const frames: Buffer[] = [];
  let off = 0;
  while (buf.length - off >= 2) {
    const len = buf.readUInt16BE(off);
    if (len > MAX_QUERY || len < 12) return { frames, rest: Buffer.alloc(0), bad: true };
    if (buf.length - off - 2 < len) break;
    frames.push(buf.subarray(off + 2, off + 2 + len));
    off += 2 + len;
  }
  return { frames, rest: buf.subarray(off), bad: false };
}

/** Frame a DNS message for TCP. */
export function frame(msg: Buffer): Buffer {
  const out = Buffer.alloc(2 + msg.length);
  out.writeUInt16BE(msg.length, 0);
  msg.copy(out, 2);
  return out;
}

/** One query to the upstream resolver over TCP; resolves to its answer. */
export function exchangeTcp(upstream: { host: string; port: number }, query: Buffer, timeoutMs = UPSTREAM_TIMEOUT_MS): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = createConnection({ host: upstream.host, port: upstream.port });
    let got = Buffer.alloc(0);
    const fail = (err: Error) => {
      sock.destroy();
      reject(err);
    };
    sock.setTimeout(timeoutMs, () => fail(new Error(`upstream ${upstream.host}:${upstream.port} did not answer over TCP within ${timeoutMs} ms`)));
    sock.on("error", fail);
    sock.on("connect", () => sock.write(frame(query)));
    sock.on("data", (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (got.length > 2 + 65535) return fail(new Error("upstream TCP answer too large"));
      if (got.length >= 2 && got.length >= 2 + got.readUInt16BE(0)) {
        sock.destroy();
        resolve(got.subarray(2, 2 + got.readUInt16BE(0)));
      }
    });
    sock.on("close", () => reject(new Error(`upstream ${upstream.host}:${upstream.port} closed before answering`)));
  });
}

/** The TCP side of one VM's resolver. */
export class TcpResolver {
  private readonly sockets = new Set<Socket>();
  private constructor(private readonly server: Server) {}

  /**
   * Listen on `host:53`; `record` sees every upstream answer first (false: drop it).
   * @throws Error naming the address when it cannot be bound
   */
  static async start(host: string, upstream: { host: string; port: number }, record: (answer: Buffer) => Promise<boolean>, port = 53): Promise<TcpResolver> {
    let self: TcpResolver | undefined;
    const server = createServer((sock) => self?.serve(sock, upstream, record));
    self = new TcpResolver(server);
    await new Promise<void>((resolve, reject) => {
      server.once("error", (err: NodeJS.ErrnoException) => reject(new Error(`cannot serve DNS over TCP on ${host}:${port}: ${err.code ?? err.message}`)));
      server.listen({ host, port, exclusive: true }, resolve);
    });
    return self;
  }

  private serve(sock: Socket, upstream: { host: string; port: number }, record: (answer: Buffer) => Promise<boolean>): void {
    if (this.sockets.size >= MAX_CONNECTIONS) {
      sock.destroy();
      return;
    }
    this.sockets.add(sock);
    sock.on("close", () => this.sockets.delete(sock));
    sock.on("error", () => sock.destroy());
    sock.setTimeout(IDLE_MS, () => sock.destroy());
    let buf = Buffer.alloc(0);
    let queued = 0;
    let chain = Promise.resolve();
    sock.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const { frames, rest, bad } = takeFrames(buf);
      buf = Buffer.from(rest);
      if (bad || buf.length > MAX_QUERY + 2 || queued + frames.length > MAX_QUEUED) return void sock.destroy();
      for (const q of frames) {
        queued++;
        const query = Buffer.from(q);
        // In order: each answer goes out after the previous one.
        chain = chain.then(async () => {
          try {
            const answer = await exchangeTcp(upstream, query);
            if (answer.length >= 2 && answer.readUInt16BE(0) === query.readUInt16BE(0) && (await record(answer)) && !sock.destroyed) sock.write(frame(answer));
          } catch {
            // No answer from upstream: the guest's resolver times out and retries, as over UDP.
          } finally {
            queued--;
          }
        });
      }
    });
  }

  /** Stop listening and close the open connections. */
  close(): void {
    this.server.close();
    for (const s of this.sockets) s.destroy();
  }
}

/**
 * @module guest/harness/port
 * The guest end of the control channel. Two transports, chosen at boot by
 * `findControlPort` (virtio-serial first, because that is what QEMU offers):
 * - QEMU: the virtio-serial port named `aegis.control`, found through
 *   `/sys/class/virtio-ports/<dev>/name` (no udev in the guest; devtmpfs
 *   provides `/dev/<dev>`).
 * - libkrun: no such port exists (libkrun's virtio-console ports are
 *   unnamed), but `/dev/vsock` does: the harness connects an AF_VSOCK stream
 *   to the host (CID 2) on `CONTROL_VSOCK_PORT` (vsock.ts). The endpoint is
 *   spelled `vsock:<cid>:<port>` so `new ControlPort(findControlPort())`
 *   works unchanged for both.
 * When neither exists the harness fails with both reasons.
 *
 * Reads and writes go through libuv's thread pool (`fs.read`/`fs.write`) so a
 * blocked read never stalls the event loop. A read returning 0 bytes means the
 * host side is not connected (before QEMU's chardev connects, or between a
 * snapshot and its restore); we poll again every 5 ms, which is what makes
 * the channel survive a restore. On vsock a 0-byte read means the host closed
 * the stream: aegisd died or is being upgraded while libkrun's worker, and so
 * this VM, runs on (live restore). The port then closes its fd and connects
 * again every {@link VSOCK_REDIAL_MS} for as long as it takes (libkrun
 * connects each new guest stream to the host's Unix socket, where the next
 * aegisd listens once it adopts the VM); a write that fails because the
 * stream broke (EPIPE, ECONNRESET, ENOTCONN) waits for the new stream and is
 * written again whole on it. Lines cut by the break are lost on both sides;
 * what matters survives through the replay ring (replay.ts), which the new
 * host asks for with `resume`, and a stale answer to a call of the previous
 * host is dropped by the host as unknown.
 * Writes are queued and issued one at a time, and `send` resolves when the
 * bytes are in the port, which gives producers (process output pumps)
 * natural backpressure.
 *
 * Lines from the host are at most {@link HOST_LINE_MAX_BYTES}: the largest
 * host -> guest message is a `run` whose argv and env the user chose, or a
 * `tether.frame` (at most 1 MiB of JSON); 8 MiB is generous for both and
 * keeps a runaway host from filling guest memory (a longer line is dropped
 * and the port resynchronises at the next newline).
 */
import { closeSync, existsSync, openSync, read, readdirSync, readFileSync, write, writeSync } from "node:fs";
import { CONTROL_PORT_NAME, CONTROL_VSOCK_PORT } from "../../src/api/schema/guest-wire.ts";
import { LineSplitter } from "../../src/api/jsonrpc.ts";

import { log } from "./log.ts";
import { connectVsock, VMADDR_CID_HOST } from "./vsock.ts";

/** Longest line accepted from the host. */
export const HOST_LINE_MAX_BYTES = 8 * 1024 * 1024;
/** How often a broken vsock stream is connected again while the host is away. */
export const VSOCK_REDIAL_MS = 100;
/** Errors of a stream whose host end went away. */
const BROKEN_STREAM = new Set(["EPIPE", "ECONNRESET", "ENOTCONN", "ECONNABORTED"]);

/** Connects a stream to the host and returns its fd; throws when it cannot (yet). `timeoutMs` 0 means one attempt. */
export type Dial = (timeoutMs: number) => number;

/** Where to look for each transport (overridable for tests). */
export interface ControlPortProbe {
  /** Directory of virtio-serial ports (default `/sys/class/virtio-ports`). */
  sysRoot?: string;
  /** The vsock device node (default `/dev/vsock`). */
  vsockDevice?: string;
}

/** The virtio-serial device named `aegis.control`, or null (also when the virtio-ports directory does not exist). */
export function findVirtioSerialPort(sysRoot = "/sys/class/virtio-ports"): string | null {
  let devs: string[];
  try {
    devs = readdirSync(sysRoot);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null; // no virtio-console driver bound: no ports
    throw err;
  }
  for (const dev of devs) {
    const namePath = `${sysRoot}/${dev}/name`;
    if (!existsSync(namePath)) continue;
    if (readFileSync(namePath, "utf8").trim() === CONTROL_PORT_NAME) return `/dev/${dev}`;
  }
  return null;
}

/** The vsock endpoint string for `cid:port`. */
export function vsockEndpoint(cid = VMADDR_CID_HOST, port = CONTROL_VSOCK_PORT): string {
  return `vsock:${cid}:${port}`;
}

/** Parse `vsock:<cid>:<port>`, or null for a device path. */
export function parseVsockEndpoint(endpoint: string): { cid: number; port: number } | null {
  const m = /^vsock:(\d+):(\d+)$/.exec(endpoint);
  return m ? { cid: Number(m[1]), port: Number(m[2]) } : null;
}

/**
 * Choose the control channel: the `/dev/vportNpM` device named
 * `aegis.control` when present (QEMU), else `vsock:2:<port>` when
 * `/dev/vsock` exists (libkrun), else throw naming both.
 */
export function findControlPort(sysRoot = "/sys/class/virtio-ports", probe: Omit<ControlPortProbe, "sysRoot"> = {}): string {
  const serial = findVirtioSerialPort(sysRoot);
  if (serial) return serial;
  const vsockDevice = probe.vsockDevice ?? "/dev/vsock";
  if (existsSync(vsockDevice)) return vsockEndpoint();
  throw new Error(`no control channel: no virtio-serial port named ${CONTROL_PORT_NAME} under ${sysRoot}, and no ${vsockDevice} for vsock port ${CONTROL_VSOCK_PORT}`);
}

/** A line-oriented duplex over the control port. */
export class ControlPort {
  private fd: number;
  /** Set for a stream transport (vsock): how to connect again once the host end goes away. */
  private readonly dial?: Dial;
  /** While the stream is being connected again: resolves once it is. */
  private redialing?: Promise<void>;
  /** Bumped at each new stream: a read that started on an older one is stale even if the new fd reuses its number. */
  private stream = 0;
  private tail: Promise<void> = Promise.resolve();
  private readonly splitter = new LineSplitter({
    maxLineBytes: HOST_LINE_MAX_BYTES,
    onOverlong: () => log(`dropped a control line over ${HOST_LINE_MAX_BYTES} bytes from the host`),
  });

  /**
   * Open a device path, or connect a `vsock:<cid>:<port>` endpoint (see
   * `findControlPort`), retrying a refused vsock connect for up to
   * `connectTimeoutMs` (the host listens before the VM starts). `dial`
   * replaces the vsock connect (tests: any stream socket fd); a port with
   * a dialer connects again when its stream breaks.
   */
  constructor(endpoint: string, opts: { connectTimeoutMs?: number; dial?: Dial; log?: (msg: string) => void } = {}) {
    const vsock = parseVsockEndpoint(endpoint);
    this.dial = opts.dial ?? (vsock ? (timeoutMs) => connectVsock(vsock.cid, vsock.port, timeoutMs) : undefined);
    this.log = opts.log ?? log;
    this.fd = this.dial ? this.dial(opts.connectTimeoutMs ?? 5000) : openSync(endpoint, "r+");
  }

  private readonly log: (msg: string) => void;

  /** The stream broke (host end gone): close it and connect again until it works. One redial at a time. */
  private redial(why: string): Promise<void> {
    if (this.redialing) return this.redialing;
    const dial = this.dial!;
    const broken = this.fd;
    this.log(`control stream lost (${why}); connecting again every ${VSOCK_REDIAL_MS} ms until the host is back`);
    this.redialing = (async () => {
      try {
        closeSync(broken);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EBADF") throw err;
      }
      let attempts = 0;
      for (;;) {
        attempts++;
        try {
          this.fd = dial(0);
          this.stream++;
          break;
        } catch (err) {
          if (attempts === 1) this.log(`control stream: ${err instanceof Error ? err.message : String(err)}; retrying`);
          await Bun.sleep(VSOCK_REDIAL_MS);
        }
      }
      this.splitter.reset();
      this.log(`control stream connected again after ${attempts} attempt(s)`);
    })().finally(() => {
      this.redialing = undefined;
    });
    return this.redialing;
  }

  /** Write `bytes` whole, on a new stream if the current one breaks (stream transports only). */
  private async writeLine(bytes: Buffer): Promise<void> {
    for (;;) {
      if (this.redialing) await this.redialing;
      try {
        await writeAll(this.fd, bytes);
        return;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? "";
        if (!this.dial || !BROKEN_STREAM.has(code)) throw err;
        await this.redial(code);
      }
    }
  }

  /** Queue `text` for writing; resolves once it is fully written. Write errors reject. */
  send(text: string): Promise<void> {
    const bytes = Buffer.from(text);
    const next = this.tail.then(() => this.writeLine(bytes));
    // Later sends must still run after a failed one; the failure is reported to this caller.
    this.tail = next.catch(() => undefined);
    return next;
  }

  /**
   * Write `text` synchronously (blocks until the host is connected). Used once,
   * for `ready`, where the thread pool's first-use cost would delay boot.
   */
  sendSync(text: string): void {
    const bytes = Buffer.from(text);
    for (let off = 0; off < bytes.length; ) off += writeSync(this.fd, bytes, off, bytes.length - off);
  }

  /**
   * Start the read loop; `onLine` receives each complete line. Runs until the process exits.
   * With `holdAfterFirstRead`, the loop reads no more after its first chunk until that
   * promise settles (the harness's handlers load after `ready`: backpressure instead of
   * an unbounded queue of early lines).
   */
  startReading(onLine: (line: string) => void, onError: (err: Error) => void, opts: { holdAfterFirstRead?: Promise<void> } = {}): void {
    const buf = Buffer.allocUnsafe(64 * 1024);
    let hold = opts.holdAfterFirstRead;
    const loop = (): void => {
      if (this.redialing) {
        this.redialing.then(loop, onError);
        return;
      }
      const stream = this.stream;
      read(this.fd, buf, 0, buf.length, null, (err, n) => {
        if (stream !== this.stream || this.redialing) {
          loop(); // the stream was replaced while this read waited: what it read belonged to the broken one
          return;
        }
        if (err) {
          if (this.dial && BROKEN_STREAM.has(err.code ?? "")) {
            this.redial(err.code!).then(loop, onError);
            return;
          }
          onError(err);
          setTimeout(loop, 50);
          return;
        }
        if (n === 0) {
          if (this.dial) this.redial("end of stream").then(loop, onError);
          else setTimeout(loop, 5);
          return;
        }
        for (const line of this.splitter.push(buf.subarray(0, n))) onLine(line);
        if (hold) {
          const h = hold;
          hold = undefined;
          h.then(loop, onError);
          return;
        }
        loop();
      });
    };
    loop();
  }
}

function writeAll(fd: number, bytes: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    let off = 0;
    const step = (): void => {
      write(fd, bytes, off, bytes.length - off, null, (err, n) => {
        if (err) {
          reject(err);
          return;
        }
        off += n;
        if (off >= bytes.length) resolve();
        else step();
      });
    };
    step();
  });
}

/**
 * @module guest/harness/port
 * The guest end of the control channel: the virtio-serial port named
 * `aegis.control`, found through `/sys/class/virtio-ports/<dev>/name` (no
 * udev in the guest; devtmpfs provides `/dev/<dev>`).
 *
 * Reads and writes go through libuv's thread pool (`fs.read`/`fs.write`) so a
 * blocked read never stalls the event loop. A read returning 0 bytes means the
 * host side is not connected (before QEMU's chardev connects, or between a
 * snapshot and its restore); we poll again every 5 ms, which is what makes
 * the channel survive a restore. Writes are queued and issued one at a time,
 * and `send` resolves when the bytes are in the port, which gives producers
 * (process output pumps) natural backpressure.
 */
import { openSync, read, readdirSync, readFileSync, write, writeSync } from "node:fs";
import { CONTROL_PORT_NAME } from "../../api/schema/control.ts";
import { LineSplitter } from "../../vmm/jsonrpc.ts";

/** Find the `/dev/vportNpM` device whose name is `aegis.control`. */
export function findControlPort(sysRoot = "/sys/class/virtio-ports"): string {
  for (const dev of readdirSync(sysRoot)) {
    const name = readFileSync(`${sysRoot}/${dev}/name`, "utf8").trim();
    if (name === CONTROL_PORT_NAME) return `/dev/${dev}`;
  }
  throw new Error(`no virtio-serial port named ${CONTROL_PORT_NAME} under ${sysRoot}`);
}

/** A line-oriented duplex over the control port. */
export class ControlPort {
  private readonly fd: number;
  private tail: Promise<void> = Promise.resolve();
  private readonly splitter = new LineSplitter();

  constructor(path: string) {
    this.fd = openSync(path, "r+");
  }

  /** Queue `text` for writing; resolves once it is fully written. Write errors reject. */
  send(text: string): Promise<void> {
    const bytes = Buffer.from(text);
    const next = this.tail.then(() => writeAll(this.fd, bytes));
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

  /** Start the read loop; `onLine` receives each complete line. Runs until the process exits. */
  startReading(onLine: (line: string) => void, onError: (err: Error) => void): void {
    const buf = Buffer.allocUnsafe(64 * 1024);
    const loop = (): void => {
      read(this.fd, buf, 0, buf.length, null, (err, n) => {
        if (err) {
          onError(err);
          setTimeout(loop, 50);
          return;
        }
        if (n === 0) {
          setTimeout(loop, 5);
          return;
        }
        for (const line of this.splitter.push(buf.subarray(0, n))) onLine(line);
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

/**
 * @module guest/harness/pty
 * Pseudo-terminals for interactive processes (`aegis run -it`, `aegis exec
 * -it`, E2B PTY sessions). The master is opened from the rootfs's own devpts
 * instance (`<root>/dev/pts/ptmx`, mounted `newinstance`), so the slave is
 * `/dev/pts/N` as the process sees it. The process gets the slave as
 * stdin/stdout/stderr and, through `busybox setsid -c`, a new session with
 * the slave as its controlling terminal: Ctrl+C, Ctrl+Z and Ctrl+D typed on
 * the host arrive as bytes and the line discipline turns them into SIGINT,
 * SIGTSTP and EOF, as a terminal would. Output is read from the master until
 * the slave's last holder closes it (EIO).
 *
 * The master is non-blocking and polled (at once after data, backing off to
 * POLL_MAX_MS when quiet): a blocking read would hold one of the few thread
 * pool threads the control port's own reads and writes need (port.ts), and
 * with a terminal waiting for its user that deadlocks the channel.
 */
import { closeSync, constants, openSync, read, writeSync } from "node:fs";
import { setWindowSize, unlockPty } from "./libc.ts";

/** An open pty pair. */
export interface Pty {
  master: number;
  slave: number;
  /** The slave as the process sees it, e.g. /dev/pts/0. */
  name: string;
}

/** Open a pty in the devpts instance under `root` (the initramfs's own when there is no rootfs). */
export function openPty(root: string | undefined, cols: number, rows: number): Pty {
  const dir = `${root ?? ""}/dev/pts`;
  const master = openSync(`${dir}/ptmx`, constants.O_RDWR | constants.O_NOCTTY | constants.O_NONBLOCK);
  try {
    const n = unlockPty(master);
    const slave = openSync(`${dir}/${n}`, constants.O_RDWR | constants.O_NOCTTY);
    setWindowSize(master, cols, rows);
    return { master, slave, name: `/dev/pts/${n}` };
  } catch (err) {
    closeSync(master);
    throw err;
  }
}

/** Longest wait between two polls of a quiet terminal. */
const POLL_MAX_MS = 25;

/** The master's output as a stream; it ends when the slave is closed by every process (EIO). */
export function masterStream(master: number): ReadableStream<Uint8Array> {
  let delay = 1;
  return new ReadableStream<Uint8Array>({
    pull: (controller) =>
      new Promise<void>((resolve) => {
        const attempt = (): void => {
          const buf = Buffer.alloc(32 * 1024);
          read(master, buf, 0, buf.length, null, (err, n) => {
            if (err && (err.code === "EAGAIN" || err.code === "EWOULDBLOCK")) {
              delay = Math.min(POLL_MAX_MS, delay * 2);
              setTimeout(attempt, delay);
              return;
            }
            delay = 1;
            // EIO (or 0): no process holds the slave any more; any other error ends the stream too.
            if (err || n === 0) controller.close();
            else controller.enqueue(buf.subarray(0, n));
            resolve();
          });
        };
        attempt();
      }),
  });
}

/** Write all of `data` to the master, waiting while the terminal's input queue is full. */
export async function writeMaster(master: number, data: Uint8Array): Promise<void> {
  for (let off = 0; off < data.length; ) {
    try {
      off += writeSync(master, data, off, data.length - off);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EAGAIN") throw err;
      await Bun.sleep(POLL_MAX_MS);
    }
  }
}

/** Resize the terminal (the foreground process group gets SIGWINCH). */
export function resizePty(pty: Pty, cols: number, rows: number): void {
  setWindowSize(pty.master, cols, rows);
}

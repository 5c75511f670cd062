/**
 * @module shim/io
 * A process's stdio FIFOs as containerd creates them (`ctr`, the CRI
 * plugin): stdout and stderr are written, stdin is read. Every FIFO is used
 * non-blocking through Bun's own poller (`Bun.file(fd)` readers and
 * writers), never through blocking calls on the thread pool: a FIFO whose
 * other side is not there yet would otherwise hold a pool thread, and a few
 * of them starve every other file operation of the shim.
 *
 *   - Output: opened write-only once a reader exists (containerd opens its
 *     read side before Create or Exec; the open is retried while it answers
 *     ENXIO, up to {@link READER_WAIT_MS}). Writes keep their order and are
 *     flushed before the exit is reported, so the reader has every byte
 *     before it learns the exit; closing gives it EOF.
 *   - stdin: opened read-write (never blocks, and no EOF before containerd
 *     says so): its end comes from CloseIO, which ctr and the CRI plugin
 *     send when their input ends.
 */
import { closeSync, constants, openSync } from "node:fs";

/** How long an output FIFO may wait for its reader. */
export const READER_WAIT_MS = 30_000;

async function openWriter(path: string): Promise<number> {
  const deadline = Date.now() + READER_WAIT_MS;
  for (;;) {
    try {
      return openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENXIO" || Date.now() > deadline) throw err;
      await Bun.sleep(20);
    }
  }
}

/** An output FIFO (or nowhere, for an empty path). */
export class OutputPipe {
  private readonly sink: Promise<{ fd: number; sink: Bun.FileSink } | null>;
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(
    readonly path: string,
    private readonly log: (msg: string) => void,
  ) {
    this.sink = path
      ? openWriter(path).then(
          (fd) => ({ fd, sink: Bun.file(fd).writer() }),
          (err: unknown) => {
            log(`output ${path} not opened, its output is dropped: ${(err as Error).message}`);
            return null;
          },
        )
      : Promise.resolve(null);
  }

  /** Queue `bytes` for the FIFO. */
  write(bytes: Uint8Array): void {
    if (this.closed) return;
    this.tail = this.tail.then(async () => {
      const s = await this.sink;
      if (!s) return;
      try {
        s.sink.write(bytes);
        await s.sink.flush();
      } catch (err) {
        this.log(`write to ${this.path} failed: ${(err as Error).message}`);
      }
    });
  }

  /** Wait for every queued write, then close (the reader sees EOF). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.tail;
    const s = await this.sink;
    if (!s) return;
    // The writer works on its own descriptor; ours must be closed too, or the reader never sees EOF.
    await s.sink.end();
    closeSync(s.fd);
  }
}

/** Read the stdin FIFO `path`, calling `onData` per chunk and `onEnd` once on close(). */
export class InputPipe {
  private ended = false;
  private readonly cancel: () => Promise<void>;

  constructor(
    readonly path: string,
    onData: (chunk: Uint8Array) => void,
    private readonly onEnd: () => void,
    log: (msg: string) => void,
  ) {
    const fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
    const reader = Bun.file(fd).stream().getReader();
    this.cancel = async () => {
      await reader.cancel();
      closeSync(fd);
    };
    void (async () => {
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          onData(value);
        }
      } catch (err) {
        if (!this.ended) log(`stdin ${path}: ${(err as Error).message}`);
      }
      this.end();
    })();
  }

  /** Stop reading (CloseIO, or the process ended). */
  close(): void {
    if (this.ended) return;
    this.end();
    void this.cancel();
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    this.onEnd();
  }
}

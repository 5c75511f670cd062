/**
 * @module shim/io
 * A process's stdio FIFOs as containerd creates them (`ctr`, the CRI
 * plugin): stdout and stderr are written, stdin is read. Output FIFOs are
 * opened read-write, which never blocks and never fails with ENXIO when the
 * reader is not there yet; writes are queued in order and awaited before
 * the exit is reported, so the reader has every byte before it learns the
 * exit. Closing them gives the reader its EOF. stdin is read on libuv's
 * thread pool (a FIFO open blocks until its writer appears).
 */
import { createReadStream, type ReadStream } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";

/** An output FIFO (or nowhere, for an empty path). */
export class OutputPipe {
  private handle: Promise<FileHandle> | null;
  private tail: Promise<unknown> = Promise.resolve();

  constructor(readonly path: string) {
    this.handle = path ? open(path, "r+") : null;
    // An open failure surfaces at the first write and at close.
    this.handle?.catch(() => undefined);
  }

  /** Queue `bytes` for the FIFO. */
  write(bytes: Uint8Array): void {
    const h = this.handle;
    if (!h) return;
    this.tail = this.tail.then(async () => (await h).write(bytes)).catch(() => undefined);
  }

  /** Wait for every queued write, then close (the reader sees EOF). */
  async close(): Promise<void> {
    const h = this.handle;
    this.handle = null;
    if (!h) return;
    await this.tail;
    await (await h.catch(() => null))?.close();
  }
}

/** Read the stdin FIFO `path`, calling `onData` per chunk and `onEnd` once at its end or on close(). */
export class InputPipe {
  private stream: ReadStream | null;
  private ended = false;

  constructor(
    readonly path: string,
    onData: (chunk: Buffer) => void,
    private readonly onEnd: () => void,
  ) {
    this.stream = createReadStream(path);
    this.stream.on("data", (c) => onData(typeof c === "string" ? Buffer.from(c) : c));
    this.stream.on("end", () => this.end());
    this.stream.on("error", () => this.end());
  }

  /** Stop reading (CloseIO, or the process ended). */
  close(): void {
    this.stream?.destroy();
    this.stream = null;
    this.end();
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    this.onEnd();
  }
}

/**
 * @module daemon/instances/serial
 * Per-key serialisation: lifecycle operations on one instance (boot, pause,
 * resume, stop, delete) run one after another, never interleaved, while
 * different instances proceed in parallel.
 */

/** Runs async functions one at a time per key. */
export class SerialQueue {
  private readonly tails = new Map<string, Promise<unknown>>();

  /** Run `fn` after every earlier operation on `key` has settled. */
  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const next = previous.then(fn, fn);
    const tail = next.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return next;
  }
}

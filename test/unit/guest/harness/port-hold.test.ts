/**
 * The harness starts reading its control port before setup but installs its
 * request handlers only after `ready` (main.ts, serve.ts): until then the
 * port must not read on, so early requests wait in the channel (not in an
 * unbounded queue, and none is dropped).
 */
import { afterEach, describe, expect, it } from "bun:test";
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ControlPort } from "../../../../guest/harness/port.ts";

async function until(what: string, ok: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(10);
  }
}

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("control port read hold", () => {
  it("reads one chunk, then nothing more until the hold settles, then every waiting line in order", async () => {
    const dir = mkdtempSync(join(tmpdir(), "port-hold-"));
    dirs.push(dir);
    const fifo = join(dir, "ctl");
    expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
    const port = new ControlPort(fifo);
    const writer = openSync(fifo, "w");
    try {
      const got: string[] = [];
      let release!: () => void;
      const hold = new Promise<void>((r) => (release = r));
      port.startReading((line) => got.push(line), (err) => got.push(`error ${err.message}`), { holdAfterFirstRead: hold });
      writeSync(writer, "first\n");
      await until("the first line", () => got.length === 1);
      writeSync(writer, "second\nthird\n");
      await Bun.sleep(300);
      expect(got).toEqual(["first"]);
      release();
      await until("the held lines", () => got.length === 3);
      expect(got).toEqual(["first", "second", "third"]);
      writeSync(writer, "fourth\n");
      await until("a line after the hold", () => got.length === 4);
      expect(got[3]).toBe("fourth");
    } finally {
      closeSync(writer);
    }
  });
});

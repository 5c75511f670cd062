/**
 * The harness's control port over a stream transport (vsock under libkrun)
 * connects again when the host end goes away (aegisd died; live restore).
 * This host has no vsock transport, so the stream is a Unix socket dialled
 * through libc exactly as vsock.ts dials AF_VSOCK: same fd, same reads and
 * writes, only the address family differs.
 */
import { afterEach, describe, expect, it } from "bun:test";
import { dlopen, FFIType, ptr } from "bun:ffi";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Socket } from "bun";
import { ControlPort } from "../../../../guest/harness/port.ts";

const libc = dlopen("libc.so.6", {
  socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  connect: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  close: { args: [FFIType.i32], returns: FFIType.i32 },
}).symbols;

/** A blocking AF_UNIX stream to `path` (one attempt), as a raw fd. */
function dialUnix(path: string): number {
  const fd = libc.socket(1 /* AF_UNIX */, 1 /* SOCK_STREAM */ | 0o2000000 /* SOCK_CLOEXEC */, 0);
  if (fd < 0) throw new Error("socket(AF_UNIX) failed");
  const addr = Buffer.alloc(110);
  addr.writeUInt16LE(1, 0);
  addr.write(path, 2);
  if (libc.connect(fd, ptr(addr), addr.length) !== 0) {
    libc.close(fd);
    throw new Error(`connect ${path} refused`);
  }
  return fd;
}

async function until(what: string, ok: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(10);
  }
}

/** A host end: every connection's received text, by connection. */
function host(path: string) {
  const got: string[] = [];
  const conns: Socket<undefined>[] = [];
  const listener = Bun.listen<undefined>({
    unix: path,
    socket: {
      open: (s) => {
        conns.push(s);
        got.push("");
      },
      data: (s, d) => {
        got[conns.indexOf(s)] += Buffer.from(d).toString();
      },
    },
  });
  return { got, conns, listener };
}

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("control port over a stream (vsock) when the host goes away", () => {
  it("connects again until a new host listens, then writes and reads on the new stream", async () => {
    const dir = mkdtempSync(join(tmpdir(), "port-redial-"));
    dirs.push(dir);
    const path = join(dir, "ctl.sock");
    const first = host(path);
    const logs: string[] = [];
    const port = new ControlPort("stream-under-test", { dial: () => dialUnix(path), log: (m) => logs.push(m) });
    const lines: string[] = [];
    const errors: Error[] = [];
    port.startReading((l) => lines.push(l), (e) => errors.push(e));
    await port.send("one\n");
    await until("the first host to get a line", () => first.got[0] === "one\n");
    first.conns[0]!.write("from-first\n");
    await until("a line from the first host", () => lines.includes("from-first"));

    // aegisd dies: its listener and connection go; nothing listens for a while.
    first.conns[0]!.end();
    first.listener.stop(true);
    rmSync(path, { force: true });
    await until("the port to notice", () => logs.some((m) => m.startsWith("control stream lost (end of stream)")));
    const sent = port.send("two\n"); // waits for the next host, then goes whole on its stream
    await Bun.sleep(300);
    expect(logs.some((m) => m.includes("retrying"))).toBe(true);

    const second = host(path);
    try {
      await sent;
      await until("the second host to get the held line", () => second.got[0] === "two\n");
      second.conns[0]!.write("from-second\n");
      await until("a line from the second host", () => lines.includes("from-second"));
      expect(lines).toEqual(["from-first", "from-second"]);
      expect(logs.at(-1)).toMatch(/^control stream connected again after \d+ attempt\(s\)$/);
      expect(errors).toEqual([]);
    } finally {
      second.listener.stop(true);
    }
  });
});

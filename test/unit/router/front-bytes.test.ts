/**
 * The reused buffer of joinHeadForWrite (src/daemon/router/front-bytes.ts):
 * what a socket did not take must survive the next response's join, because
 * writeQueued copies it before returning.
 */
import { describe, expect, it } from "bun:test";
import { joinHead, joinHeadForWrite } from "../../../src/daemon/router/front-bytes.ts";
import { flushQueue, writeQueued } from "../../../src/daemon/router/queued-writes.ts";

/** A socket that takes `room` bytes per write and records them. */
function slowSocket(room: number) {
  const got: number[] = [];
  return {
    got,
    room,
    write(bytes: Uint8Array | string) {
      const b = typeof bytes === "string" ? Buffer.from(bytes, "latin1") : bytes;
      const n = Math.min(this.room, b.length);
      got.push(...b.subarray(0, n));
      return n;
    },
  };
}

describe("router front: joined heads written from one reused buffer", () => {
  it("joins like joinHead, and a short write keeps its rest intact across the next join", () => {
    const body = Buffer.from("hello");
    expect(joinHeadForWrite("HTTP/1.1 200 OK\r\n\r\n", body).equals(joinHead("HTTP/1.1 200 OK\r\n\r\n", body))).toBe(true);
    const sock = slowSocket(4);
    const queue: Uint8Array[] = [];
    let paused = 0;
    writeQueued(sock as never, queue, joinHeadForWrite("HEAD-ONE\r\n\r\n", Buffer.from("first body")), () => paused++);
    writeQueued(sock as never, queue, joinHeadForWrite("HEAD-TWO\r\n\r\n", Buffer.from("second body")), () => paused++);
    expect(paused).toBe(1);
    sock.room = 1 << 20;
    expect(flushQueue(sock as never, queue)).toBe(true);
    expect(Buffer.from(sock.got).toString("latin1")).toBe("HEAD-ONE\r\n\r\nfirst bodyHEAD-TWO\r\n\r\nsecond body");
  });

  it("gives a head and body larger than the reused buffer a buffer of their own", () => {
    const big = Buffer.alloc(64 * 1024, 0x61);
    const a = joinHeadForWrite("H\r\n\r\n", big);
    const b = joinHeadForWrite("X\r\n\r\n", Buffer.from("y"));
    expect(a.length).toBe(big.length + 5);
    expect(a.subarray(0, 5).toString()).toBe("H\r\n\r\n");
    expect(b.toString()).toBe("X\r\n\r\ny");
  });
});

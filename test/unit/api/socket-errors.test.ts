import { afterAll, describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AegisClient, DaemonConnectionLost, DaemonNotRunning, DaemonPermissionDenied, DaemonUnavailable, socketError } from "../../../src/api/client.ts";

const dir = mkdtempSync(join(tmpdir(), "ag-sock-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("socket errors", () => {
  it("maps each errno of a failed connection to one clear error with what to do", () => {
    const s = "/x/aegisd.sock";
    expect(socketError(Object.assign(new Error("x"), { code: "ENOENT" }), s)).toBeInstanceOf(DaemonNotRunning);
    expect(socketError(Object.assign(new Error("x"), { code: "ECONNREFUSED" }), s)).toBeInstanceOf(DaemonNotRunning);
    const denied = socketError(Object.assign(new Error("x"), { code: "EACCES" }), s) as DaemonPermissionDenied;
    expect(denied).toBeInstanceOf(DaemonPermissionDenied);
    expect(denied.message).toContain(s);
    expect(denied.hint).toContain("AEGIS_HOME");
    const lost = socketError(Object.assign(new Error("ECONNRESET: The socket connection was closed unexpectedly"), { code: "ECONNRESET" }), s) as DaemonConnectionLost;
    expect(lost).toBeInstanceOf(DaemonConnectionLost);
    expect(lost.message).not.toContain("ECONNRESET");
    expect(lost.hint).toContain("aegis up");
    const other = new Error("unrelated");
    expect(socketError(other, s)).toBe(other);
  });

  it("reports a daemon that closes the connection mid-stream as DaemonConnectionLost, not a raw fetch error", async () => {
    const path = join(dir, "reset.sock");
    const server = Bun.listen({
      unix: path,
      socket: {
        data(sock) {
          sock.write('HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\ntransfer-encoding: chunked\r\n\r\n');
          const line = `${JSON.stringify({ type: "output", seq: 1, ts: new Date().toISOString(), stream: "stdout", text: "a\n" })}\n`;
          sock.write(`${Buffer.byteLength(line).toString(16)}\r\n${line}\r\n`);
          setTimeout(() => sock.terminate(), 30);
        },
      },
    });
    try {
      const seen: number[] = [];
      let error: unknown;
      try {
        for await (const l of new AegisClient(path).taskLogs("task-x", true)) if (l.type === "output") seen.push(l.seq);
      } catch (err) {
        error = err;
      }
      expect(seen).toEqual([1]);
      expect(error).toBeInstanceOf(DaemonConnectionLost);
    } finally {
      server.stop(true);
    }
  });

  it("reports a missing socket as DaemonNotRunning", async () => {
    const err = await new AegisClient(join(dir, "none.sock")).status().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DaemonNotRunning);
    expect(err).toBeInstanceOf(DaemonUnavailable);
  });
});

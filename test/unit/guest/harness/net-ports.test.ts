import { afterAll, describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RpcErrorCode } from "../../../../src/api/schema/control.ts";
import { listenersOn, parseProcNetTcp, waitForListen } from "../../../../guest/harness/net-ports.ts";

const HEADER4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
const HEADER6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
const row = (local: string, st: string) => `   0: ${local} 00000000:0000 ${st} 00000000:00000000 00:00000000 00000000     0        0 35 1 000000003a6e7cbe 100 0 0 10 0\n`;

const tcp4 = HEADER4
  + row("00000000:0050", "0A") // 0.0.0.0:80 LISTEN
  + row("0100007F:1F90", "0A") // 127.0.0.1:8080 LISTEN
  + row("0F02000A:0050", "01") // 10.0.2.15:80 ESTABLISHED
  + row("0F02000A:2328", "06"); // 10.0.2.15:9000 TIME_WAIT
const tcp6 = HEADER6
  + row("00000000000000000000000000000000:1F40", "0A") // [::]:8000
  + row("00000000000000000000000001000000:0BB8", "0A"); // [::1]:3000

describe("parseProcNetTcp", () => {
  it("keeps only LISTEN sockets, with their port and whether they are loopback-only", () => {
    expect(parseProcNetTcp(tcp4)).toEqual([{ port: 80, loopback: false }, { port: 8080, loopback: true }]);
    expect(parseProcNetTcp(tcp6)).toEqual([{ port: 8000, loopback: false }, { port: 3000, loopback: true }]);
  });

  it("ignores the header, blank lines and garbage", () => {
    expect(parseProcNetTcp(`${HEADER4}\n  junk\n`)).toEqual([]);
    expect(parseProcNetTcp("")).toEqual([]);
  });
});

describe("waitForListen", () => {
  const dir = mkdtempSync(join(tmpdir(), "agnet-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, "tcp"), HEADER4);

  it("reads tcp and tcp6 (tcp6 may be absent)", () => {
    const d = mkdtempSync(join(dir, "x"));
    writeFileSync(join(d, "tcp"), tcp4);
    expect(listenersOn(80, d)).toEqual([{ port: 80, loopback: false }]);
    writeFileSync(join(d, "tcp6"), tcp6);
    expect(listenersOn(3000, d)).toEqual([{ port: 3000, loopback: true }]);
  });

  it("resolves as soon as a listener appears and reports loopback-only listeners", async () => {
    writeFileSync(join(dir, "tcp"), HEADER4);
    const t0 = performance.now();
    const p = waitForListen(8080, 5000, dir);
    setTimeout(() => writeFileSync(join(dir, "tcp"), tcp4), 150);
    expect(await p).toEqual({ ok: true, loopback_only: true });
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(await waitForListen(80, 0, dir)).toEqual({ ok: true, loopback_only: false });
  });

  it("fails with a timeout RPC error naming the port", async () => {
    writeFileSync(join(dir, "tcp"), HEADER4);
    const err = await waitForListen(4444, 120, dir).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: RpcErrorCode.timeout });
    expect(String(err)).toContain("4444");
  });
});

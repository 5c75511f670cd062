/**
 * Backpressure end to end (issue 13, finding 4): an `aegis exec` client that
 * stops reading (Ctrl+Z, `| less`) must stop the guest process, not make
 * aegisd (or the CLI) buffer its output. The client is the real CLI: first
 * suspended with SIGSTOP for 15 s (Ctrl+Z), then running with its stdout on
 * a pipe the test leaves unread for 10 s (a stalled `| less`). aegisd's and
 * the client's resident memory are sampled meanwhile; then reading resumes
 * and every byte must arrive intact.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { aegisBin, TestHome } from "../helpers/aegis.ts";

const TIMEOUT = 300_000;
const BLOB_MIB = 96;
/** What aegisd may grow by while the client is stopped (without flow control it buffered the whole blob, base64'd). */
const RSS_BOUND_MIB = 40;
let home: TestHome;

/** aegisd's resident set size in MiB. */
function rssMib(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error(`no VmRSS for aegisd ${pid}`);
  return Number(m[1]) / 1024;
}

beforeAll(async () => {
  home = new TestHome();
  await home.ok(["up"]);
  await home.ok(["instance", "start", "--name", "bp", "--memory", "768", "--pause-after", "0", "--", "sleep", "100000"]);
}, TIMEOUT);

afterAll(async () => {
  await home?.[Symbol.asyncDispose]();
}, 60_000);

describe("a stopped exec client", () => {
  it("holds the guest process back, keeps aegisd's memory bounded, and loses nothing once reading resumes", async () => {
    const made = await home.ok(["exec", "bp", "--", "sh", "-c", `dd if=/dev/urandom of=/tmp/blob bs=1048576 count=${BLOB_MIB} 2>/dev/null && sha256sum /tmp/blob`]);
    const expected = made.stdout.split(" ")[0]!;
    expect(expected).toMatch(/^[0-9a-f]{64}$/);
    const pid = Number(readFileSync(`${home.dir}/data/aegisd.pid`, "utf8"));
    const before = rssMib(pid);

    // The CLI's stdout is a real pipe (a FIFO) whose reader holds it open but reads nothing until GO
    // exists, like a stalled `| less`; a Bun pipe would not do, as Bun reads it eagerly. The shell
    // execs the CLI, so `client.pid` is the CLI's own pid. The reader prints the hash of what it got.
    const work = mkdtempSync(join(tmpdir(), "aegis-bp-"));
    const fifo = join(work, "out");
    const go = join(work, "GO");
    const script = `mkfifo '${fifo}'; (exec 3<'${fifo}'; while [ ! -e '${go}' ]; do sleep 0.2; done; sha256sum <&3) & exec '${aegisBin()}' exec bp -- cat /tmp/blob > '${fifo}'`;
    const client = Bun.spawn(["sh", "-c", script], {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", AEGIS_HOME: home.dir },
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    const stderr = new Response(client.stderr).text();
    await Bun.sleep(3000); // the stream is flowing
    const clientBefore = rssMib(client.pid);
    let peak = before;
    let clientPeak = clientBefore;
    process.kill(client.pid, "SIGSTOP");
    for (let t = 0; t < 15; t++) {
      await Bun.sleep(1000);
      peak = Math.max(peak, rssMib(pid));
    }
    process.kill(client.pid, "SIGCONT");
    expect(peak - before).toBeLessThan(RSS_BOUND_MIB); // aegisd, while the client was suspended
    for (let t = 0; t < 10; t++) {
      await Bun.sleep(1000);
      // Still blocked behind its unread pipe (a client that buffered everything would be done by now).
      expect(client.exitCode).toBeNull();
      peak = Math.max(peak, rssMib(pid));
      clientPeak = Math.max(clientPeak, rssMib(client.pid));
    }
    writeFileSync(go, "");
    const got = await new Response(client.stdout as ReadableStream<Uint8Array>).text();
    expect({ code: await client.exited, stderr: await stderr }).toEqual({ code: 0, stderr: "" });
    expect(got.split(" ")[0]).toBe(expected);
    rmSync(work, { recursive: true, force: true });
    expect(peak - before).toBeLessThan(RSS_BOUND_MIB); // aegisd, over the whole stall
    expect(clientPeak - clientBefore).toBeLessThan(RSS_BOUND_MIB); // the CLI
  }, TIMEOUT);
});

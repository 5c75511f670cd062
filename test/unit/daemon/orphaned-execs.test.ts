/**
 * daemon/instances/orphans.ts: a re-adopting daemon asks the harness to end
 * the execs it no longer follows, over a real ControlChannel to a scripted
 * guest. Whatever the guest answers (a good answer, an older harness's
 * methodNotFound, a hostile or oversized answer, silence) is bounded, logged
 * and never thrown.
 */
import { afterEach, describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ControlChannel } from "../../../src/vmm/control-channel.ts";
import { errorResponse, LineSplitter, response } from "../../../src/api/jsonrpc.ts";
import { endOrphanedExecs, ORPHAN_GRACE_MS } from "../../../src/daemon/instances/orphans.ts";
import { MAX_TRACKED_PROCESSES } from "../../../src/api/schema/control.ts";

const dirs: string[] = [];
const channels: ControlChannel[] = [];
afterEach(() => {
  for (const c of channels.splice(0)) c.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

type Logged = { level: string; msg: string; fields?: Record<string, unknown> };

/** A channel whose guest answers each request with `answer(request)` (or never, when it returns undefined). */
async function guest(answer: (req: any) => string | undefined): Promise<{ ch: ControlChannel; requests: any[] }> {
  const dir = mkdtempSync(join(tmpdir(), "orph-"));
  dirs.push(dir);
  const ch = ControlChannel.listen(join(dir, "ctl.sock"), () => {});
  channels.push(ch);
  const split = new LineSplitter();
  const requests: any[] = [];
  await Bun.connect<undefined>({
    unix: ch.path,
    socket: {
      data: (s, d) => {
        for (const line of split.push(d)) {
          const req = JSON.parse(line);
          requests.push(req);
          const out = answer(req);
          if (out !== undefined) s.write(out);
        }
      },
    },
  });
  await ch.waitConnected(2000);
  return { ch, requests };
}

function logger(): { log: { info: (m: string, f?: Record<string, unknown>) => void; warn: (m: string, f?: Record<string, unknown>) => void; error: (m: string, f?: Record<string, unknown>) => void }; lines: Logged[] } {
  const lines: Logged[] = [];
  const at = (level: string) => (msg: string, fields?: Record<string, unknown>) => void lines.push({ level, msg, fields });
  return { log: { info: at("info"), warn: at("warn"), error: at("error") }, lines };
}

describe("endOrphanedExecs", () => {
  it("asks the harness to end every client-bound process but the kept ones, and logs what it ended", async () => {
    const { ch, requests } = await guest((req) => response(req.id, { ended: ["p1", "p2"] }));
    const { log, lines } = logger();
    expect(await endOrphanedExecs(ch, "inst-1", log)).toEqual(["p1", "p2"]);
    expect(requests).toHaveLength(1);
    expect(requests[0].method).toBe("processes.end_untracked");
    expect(requests[0].params).toEqual({ keep: [], grace_ms: ORPHAN_GRACE_MS });
    expect(lines).toEqual([{ level: "info", msg: "ended execs orphaned by the aegisd restart", fields: { instance: "inst-1", count: 2, ids: ["p1", "p2"] } }]);
  });

  it("logs nothing when nothing was orphaned", async () => {
    const { ch } = await guest((req) => response(req.id, { ended: [] }));
    const { log, lines } = logger();
    expect(await endOrphanedExecs(ch, "inst-1", log)).toEqual([]);
    expect(lines).toEqual([]);
  });

  it("an older harness (methodNotFound) is a warning that says what it means, not a failure", async () => {
    const { ch } = await guest((req) => errorResponse(req.id, { code: -32601, message: "unknown method processes.end_untracked" }));
    const { log, lines } = logger();
    expect(await endOrphanedExecs(ch, "inst-1", log)).toEqual([]);
    expect(lines).toHaveLength(1);
    expect(lines[0]!.level).toBe("warn");
    expect(lines[0]!.msg).toContain("predates ending orphaned execs");
  });

  it("refuses a hostile answer (too many ids, wrong types, a huge error message) without throwing", async () => {
    const huge = Array.from({ length: MAX_TRACKED_PROCESSES + 1 }, (_, i) => `x${i}`);
    const answers = [response(1, { ended: huge }), response(2, { ended: [42] }), response(3, { ended: ["a"], extra: true }), errorResponse(4, { code: -32603, message: "E".repeat(100_000) })];
    let n = 0;
    const { ch } = await guest((req) => answers[n++]!.replace(/"id":\d+/, `"id":${req.id}`));
    const { log, lines } = logger();
    for (let i = 0; i < answers.length; i++) expect(await endOrphanedExecs(ch, "inst-1", log)).toEqual([]);
    expect(lines.map((l) => l.level)).toEqual(["warn", "warn", "warn", "warn"]);
    for (const l of lines) expect(String(l.fields?.error).length).toBeLessThanOrEqual(300);
    expect(String(lines[0]!.fields?.error)).toContain("invalid result");
  });

  it("a harness that never answers costs a bounded wait and a warning", async () => {
    const { ch } = await guest(() => undefined);
    const { log, lines } = logger();
    const call = ch.call.bind(ch);
    // The real timeout is 10 s; the channel's own timeout path is what is exercised, shortened here.
    const quick = { call: ((m: never, p: never) => call(m, p, { timeoutMs: 200 })) as ControlChannel["call"] };
    expect(await endOrphanedExecs(quick, "inst-1", log)).toEqual([]);
    expect(lines[0]!.level).toBe("warn");
    expect(String(lines[0]!.fields?.error)).toContain("did not answer");
  });
});

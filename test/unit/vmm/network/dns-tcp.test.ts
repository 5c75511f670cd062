/** DNS over TCP framing and bounds (vmm/network/dns-tcp.ts), and one exchange with a loopback stand-in upstream. */
import { describe, expect, it } from "bun:test";
import dnsPacket from "dns-packet";
import { connect, createServer } from "node:net";
import { exchangeTcp, frame, MAX_QUERY, takeFrames, TcpResolver } from "../../../../src/vmm/network/dns-tcp.ts";

const query = (id: number) => dnsPacket.encode({ type: "query", id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: "A", name: "pub.example" }] });

describe("takeFrames", () => {
  it("splits pipelined queries and keeps an incomplete tail", () => {
    const a = query(1);
    const b = query(2);
    const both = Buffer.concat([frame(a), frame(b)]);
    expect(takeFrames(both).frames.map((f) => f.readUInt16BE(0))).toEqual([1, 2]);
    const cut = takeFrames(both.subarray(0, both.length - 3));
    expect(cut.frames).toHaveLength(1);
    expect(cut.rest.length).toBe(frame(b).length - 3);
    expect(takeFrames(Buffer.from([0])).rest.length).toBe(1);
  });
  it("flags a frame larger than a query may be, or too short to be DNS", () => {
    const big = Buffer.alloc(2);
    big.writeUInt16BE(MAX_QUERY + 1);
    expect(takeFrames(big).bad).toBe(true);
    expect(takeFrames(Buffer.from([0, 5, 1, 2, 3, 4, 5])).bad).toBe(true);
  });
});

describe("TcpResolver", () => {
  it("forwards a query upstream over TCP, lets the recorder see the answer first, and answers in order", async () => {
    // A stand-in upstream on loopback answering every A query with 198.18.0.10.
    const upstream = createServer((s) => {
      let got = Buffer.alloc(0);
      s.on("data", (d: Buffer) => {
        got = Buffer.concat([got, d]);
        if (got.length < 2 || got.length < 2 + got.readUInt16BE(0)) return;
        const q = dnsPacket.decode(got.subarray(2));
        s.end(frame(dnsPacket.encode({ type: "response", id: q.id, flags: dnsPacket.RECURSION_DESIRED, questions: q.questions, answers: [{ type: "A", name: "pub.example", ttl: 30, data: "198.18.0.10" }] })));
      });
    });
    await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
    const up = { host: "127.0.0.1", port: (upstream.address() as { port: number }).port };
    const direct = dnsPacket.decode(await exchangeTcp(up, query(7)));
    expect(direct.id).toBe(7);
    const recorded: number[] = [];
    const resolver = await TcpResolver.start("127.0.0.1", up, async (a) => (recorded.push(a.readUInt16BE(0)), a.readUInt16BE(0) !== 66), 0);
    const port = ((resolver as unknown as { server: { address(): { port: number } } }).server.address()).port;
    const answers = await new Promise<number[]>((resolve, reject) => {
      const ids: number[] = [];
      const sock = connect({ host: "127.0.0.1", port }, () => sock.write(Buffer.concat([frame(query(11)), frame(query(66)), frame(query(12))])));
      let got = Buffer.alloc(0);
      sock.on("data", (d: Buffer) => {
        got = Buffer.concat([got, d]);
        const { frames, rest } = takeFrames(got);
        got = Buffer.from(rest);
        for (const f of frames) ids.push(f.readUInt16BE(0));
        if (ids.length === 2) {
          sock.destroy();
          resolve(ids);
        }
      });
      sock.on("error", reject);
    });
    expect(answers).toEqual([11, 12]); // 66 was refused by the recorder: never sent to the guest
    expect(recorded).toEqual([11, 66, 12]);
    resolver.close();
    upstream.close();
  });
});

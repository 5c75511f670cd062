/**
 * The harness's tether relay passes each host -> guest frame to the agent
 * once: a frame whose seq it already passed on (a new aegisd delivering
 * again what the previous one wrote just before it died) is dropped and
 * logged. A real loopback listener stands in for the agent.
 */
import { afterEach, expect, it } from "bun:test";
import type { TCPSocketListener } from "bun";
import { TetherRelay } from "../../../../guest/harness/tether-relay.ts";

let agent: TCPSocketListener<undefined> | undefined;
afterEach(() => agent?.stop(true));

it("drops a frame whose seq was already passed on, keeping the order of the rest", async () => {
  let received = "";
  agent = Bun.listen<undefined>({ hostname: "127.0.0.1", port: 0, socket: { data: (_s, d) => void (received += d.toString()) } });
  const logs: string[] = [];
  const relay = new TetherRelay(() => undefined, (m) => logs.push(m), agent.port);
  for (const seq of [1, 2, 2, 1, 3]) relay.deliver({ type: "user.message", seq });
  const deadline = Date.now() + 5000;
  while (received.split("\n").length < 4 && Date.now() < deadline) await Bun.sleep(10);
  await Bun.sleep(100);
  expect(received.trim().split("\n").map((l) => JSON.parse(l).seq)).toEqual([1, 2, 3]);
  expect(logs.filter((l) => l.includes("already delivered"))).toEqual(["tether: frame 2 already delivered; dropped", "tether: frame 1 already delivered; dropped"]);
});

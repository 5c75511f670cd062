/**
 * Test doubles for the router: hooks that stand in for the daemon (with an
 * optional slow or failing wake) and a local Bun server standing in for a
 * guest port. Shared by test/unit/router and test/integration/router.test.ts.
 */
import type { Server } from "bun";
import { Router } from "../../../src/daemon/router/index.ts";
import type { HostAddress, RouteTarget, RouterHooks, ServedInstance } from "../../../src/daemon/router/types.ts";

/** RouterHooks backed by maps, recording every call. */
export class TestHooks implements RouterHooks {
  served: ServedInstance[] = [];
  /** Where each instance's guest port is forwarded on the host. */
  readonly addrs = new Map<string, HostAddress>();
  /** Instances that must be woken before they are reachable. */
  readonly asleep = new Set<string>();
  wakeDelayMs = 0;
  /** When set, waking rejects with this error. */
  wakeError: Error | undefined;
  ensureCalls = 0;
  /** Wakes actually performed (concurrent callers share one). */
  wakes = 0;
  readonly started = new Map<string, number>();
  readonly ended = new Map<string, number>();
  readonly #waking = new Map<string, Promise<HostAddress>>();

  /** Serve `instanceId` under `handle`, its guest port forwarded to `addr`. */
  serve(instanceId: string, handle: string, addr: HostAddress, guestPort = 8080): this {
    this.served.push({ instanceId, handle, guestPort });
    this.addrs.set(instanceId, addr);
    return this;
  }

  servedInstances(): ServedInstance[] {
    return this.served;
  }

  ensureReachable(target: RouteTarget): Promise<HostAddress> {
    this.ensureCalls++;
    const addr = this.addrs.get(target.instanceId);
    if (!addr) return Promise.reject(new Error(`instance "${target.instanceId}" is not known to the test hooks`));
    if (!this.asleep.has(target.instanceId)) return Promise.resolve(addr);
    let wake = this.#waking.get(target.instanceId);
    if (!wake) {
      this.wakes++;
      wake = (async () => {
        await Bun.sleep(this.wakeDelayMs);
        this.#waking.delete(target.instanceId);
        if (this.wakeError) throw this.wakeError;
        this.asleep.delete(target.instanceId);
        return addr;
      })();
      this.#waking.set(target.instanceId, wake);
    }
    return wake;
  }

  activityStarted(instanceId: string): void {
    this.started.set(instanceId, (this.started.get(instanceId) ?? 0) + 1);
  }

  activityEnded(instanceId: string): void {
    this.ended.set(instanceId, (this.ended.get(instanceId) ?? 0) + 1);
  }

  /** Activities started but not ended, over all instances. */
  get open(): number {
    let n = 0;
    for (const [id, s] of this.started) n += s - (this.ended.get(id) ?? 0);
    return n;
  }

  /** Activities started, over all instances. */
  get total(): number {
    let n = 0;
    for (const s of this.started.values()) n += s;
    return n;
  }

  /** Resolve once every started activity has ended (they end asynchronously after a response). */
  async settled(timeoutMs = 2000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.open !== 0) {
      if (Date.now() > deadline) throw new Error(`activity unbalanced: started ${JSON.stringify([...this.started])}, ended ${JSON.stringify([...this.ended])}`);
      await Bun.sleep(5);
    }
  }
}

/** A router on a free port plus its hooks; `await using` stops it. */
export async function startRouter(hooks = new TestHooks()): Promise<{ router: Router; hooks: TestHooks; url: string; logs: string[] } & AsyncDisposable> {
  const logs: string[] = [];
  const router = new Router(hooks, { httpPort: 0, log: (msg, fields) => logs.push(`${msg} ${JSON.stringify(fields ?? {})}`) });
  await router.start();
  return { router, hooks, logs, url: `http://127.0.0.1:${router.httpPort}`, [Symbol.asyncDispose]: () => router.stop() };
}

/** A Bun server on a free port; `using` stops it. */
export function upstream<T = undefined>(options: Omit<Bun.Serve.Options<T>, "port" | "hostname">): { server: Server<T>; addr: HostAddress } & Disposable {
  const server = Bun.serve<T>({ port: 0, hostname: "127.0.0.1", idleTimeout: 0, ...options } as Bun.Serve.Options<T>);
  return { server, addr: { host: "127.0.0.1", port: server.port! }, [Symbol.dispose]: () => void server.stop(true) };
}

/** A port nothing listens on (bound, read, released). */
export function deadPort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

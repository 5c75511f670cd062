/**
 * @module shim/events
 * Task events to containerd's events service at `TTRPC_ADDRESS`
 * (`containerd.services.events.ttrpc.v1.Events/Forward`): the CRI plugin
 * learns exits only from these, and `ctr events` shows them. Events go out
 * one at a time in the order they happened; a failed publish is logged and
 * retried once on a fresh connection (containerd restarting), then dropped,
 * never blocking the task service.
 */
import { any, timestamp, type Msg } from "./proto/index.ts";
import { TtrpcClient } from "./ttrpc.ts";

/** Topics, by containerd's event message name. */
export const TOPICS = {
  TaskCreate: "/tasks/create",
  TaskStart: "/tasks/start",
  TaskExit: "/tasks/exit",
  TaskDelete: "/tasks/delete",
  TaskExecAdded: "/tasks/exec-added",
  TaskExecStarted: "/tasks/exec-started",
  TaskPaused: "/tasks/paused",
  TaskResumed: "/tasks/resumed",
} as const;

/** An event name. */
export type EventName = keyof typeof TOPICS;

/** Publishes events for one namespace. */
export class EventPublisher {
  private client: Promise<TtrpcClient> | null = null;
  private tail: Promise<void> = Promise.resolve();

  constructor(
    private readonly address: string,
    private readonly namespace: string,
    private readonly log: (msg: string) => void,
  ) {}

  /** Queue `event`; resolves once it was forwarded (or dropped). */
  publish(name: EventName, event: Msg): Promise<void> {
    const envelope = { timestamp: timestamp(Date.now()), namespace: this.namespace, topic: TOPICS[name], event: any(`containerd.events.${name}`, event) };
    this.tail = this.tail.then(() => this.forward(envelope, true));
    return this.tail;
  }

  /** Close the connection. */
  async close(): Promise<void> {
    await this.tail;
    (await this.client?.catch(() => null))?.close();
    this.client = null;
  }

  private async forward(envelope: Msg, retry: boolean): Promise<void> {
    if (!this.address) return this.log(`no TTRPC_ADDRESS: event ${String(envelope.topic)} not published`);
    try {
      this.client ??= TtrpcClient.connect(this.address);
      const c = await this.client;
      await c.call("containerd.services.events.ttrpc.v1.Events", "Forward", "containerd.services.events.ttrpc.v1.ForwardRequest", { envelope }, "google.protobuf.Empty", { "containerd-namespace-ttrpc": this.namespace });
    } catch (err) {
      this.client = null;
      if (retry) return this.forward(envelope, false);
      this.log(`event ${String(envelope.topic)} could not be published: ${(err as Error).message}`);
    }
  }
}

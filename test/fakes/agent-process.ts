/**
 * Test helpers for the agent runtime: start it as a child process (from
 * source, via run-agent.ts) and talk to it like the guest harness does, over
 * TCP with NDJSON tether frames.
 */
import { connect, type Socket } from "node:net";
import { join } from "node:path";

/** A running agent process. */
export class AgentProcess {
  /** Everything the agent printed on stdout (the spec's start lines). */
  stdout = "";
  stderr = "";
  port = 0;
  private constructor(readonly proc: ReturnType<typeof Bun.spawn>) {}

  /** Start the agent with `env` (plus PATH/HOME) and wait for its listening line. */
  static async start(env: Record<string, string>): Promise<AgentProcess> {
    const proc = Bun.spawn([process.execPath, join(import.meta.dir, "run-agent.ts")], {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/tmp", AEGIS_AGENT_PORT: "0", ...env },
      stdout: "pipe",
      stderr: "pipe",
    });
    const agent = new AgentProcess(proc);
    const dec = new TextDecoder();
    void (async () => {
      for await (const c of proc.stderr as ReadableStream<Uint8Array>) agent.stderr += dec.decode(c);
    })();
    const listening = new Promise<void>((resolve, reject) => {
      void (async () => {
        for await (const c of proc.stdout as ReadableStream<Uint8Array>) {
          agent.stdout += dec.decode(c);
          const m = /agent listening on 127\.0\.0\.1:(\d+)\n/.exec(agent.stdout);
          if (m && agent.port === 0) {
            agent.port = Number(m[1]);
            resolve();
          }
        }
        reject(new Error(`agent exited before listening\nstdout: ${agent.stdout}\nstderr: ${agent.stderr}`));
      })();
    });
    await Promise.race([listening, Bun.sleep(15_000).then(() => Promise.reject(new Error(`agent did not start\n${agent.stderr}`)))]);
    return agent;
  }

  /** SIGTERM and wait for the exit code. */
  async stop(): Promise<number> {
    this.proc.kill("SIGTERM");
    return await this.proc.exited;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.proc.exitCode === null) await this.stop();
  }
}

/** A frame as received (loosely typed for assertions). */
export type Frame = { type: string; session: { channel: string; id: string }; msg_id: string; reply_to?: string; payload: any };

/** The harness side of the wire. */
export class HarnessClient {
  readonly frames: Frame[] = [];
  private buf = "";
  private waiters: (() => void)[] = [];
  private constructor(readonly sock: Socket) {
    sock.setEncoding("utf8");
    sock.on("data", (d: string) => {
      this.buf += d;
      const parts = this.buf.split("\n");
      this.buf = parts.pop() ?? "";
      for (const p of parts) if (p.trim()) this.frames.push(JSON.parse(p));
      for (const w of this.waiters.splice(0)) w();
    });
  }

  /** Connect to an agent's port. */
  static async connect(port: number): Promise<HarnessClient> {
    const sock = connect(port, "127.0.0.1");
    await new Promise<void>((resolve, reject) => {
      sock.once("connect", resolve);
      sock.once("error", reject);
    });
    return new HarnessClient(sock);
  }

  /** Send a host -> guest frame. */
  send(frame: Record<string, unknown>): void {
    this.sock.write(`${JSON.stringify({ v: 1, ...frame })}\n`);
  }

  /** Send a user.message; returns its msg_id. */
  say(sessionId: string, text: string, opts: { msgId?: string; user?: Record<string, string>; channel?: string } = {}): string {
    const msg_id = opts.msgId ?? crypto.randomUUID();
    const payload: Record<string, unknown> = { text };
    if (opts.user) payload.user = opts.user;
    this.send({ type: "user.message", session: { channel: opts.channel ?? "test", id: sessionId }, msg_id, payload });
    return msg_id;
  }

  /** Frames answering one message. */
  framesFor(msgId: string): Frame[] {
    return this.frames.filter((f) => f.reply_to === msgId);
  }

  /** Wait until `pred` holds for the received frames. */
  async waitFor(pred: (frames: Frame[]) => boolean, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred(this.frames)) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting; frames so far:\n${this.frames.map((f) => JSON.stringify(f)).join("\n")}`);
      await Promise.race([new Promise<void>((r) => this.waiters.push(r)), Bun.sleep(Math.min(left, 200))]);
    }
  }

  /** Wait for the `assistant.done` of a message and the `idle` presence after it; returns the done frame. */
  async done(msgId: string, timeoutMs = 10_000): Promise<Frame> {
    await this.waitFor(() => this.framesFor(msgId).some((f) => f.type === "status.presence" && f.payload.state === "idle"), timeoutMs);
    return this.framesFor(msgId).find((f) => f.type === "assistant.done") as Frame;
  }

  close(): void {
    this.sock.destroy();
  }
}

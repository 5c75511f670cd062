/**
 * @module guest/agent/runtime
 * What the agent does with host -> guest frames.
 *
 * `user.message`: `event.ack` at once, then, in order per session (one
 * request at a time, later messages queued), `status.presence thinking`, the
 * provider stream as `assistant.delta` frames (`status.presence typing`
 * before the first), `assistant.done` with the full text, and
 * `status.presence idle`. Every failure ends in an `assistant.done` carrying
 * `error {code, message}` and whatever text was already streamed.
 *
 * `control.cancel`: with `payload.msg_id`, cancels that message (queued or in
 * flight); without, cancels the session's in-flight request. The cancelled
 * request ends with `assistant.done {text: partial, error {code: "cancelled"}}`.
 *
 * Every guest -> host frame carries `reply_to`, the `msg_id` of the user
 * message it belongs to.
 *
 * Tools (when `deps.tools` is set, see tools.ts): each request offers the
 * tools; when the model ends a stream asking for tool calls, they run in
 * order through MCP, the round (the model's text and calls, and the results)
 * is added to the request and the model is asked again, up to
 * {@link MAX_TOOL_ROUNDS} rounds; a model still calling tools after that ends
 * the answer with error `tool_rounds_exceeded`. Text from every round streams
 * as `assistant.delta`, and `assistant.done.text` is all of it (the deltas
 * joined). The session JSONL keeps only the user and assistant text turns:
 * tool calls and results live only for the user message they served, so a
 * later message's context does not replay them.
 */
import { egressFrame, newMsgId, type TetherEgressDraft, type TetherError, type TetherIngress, type TetherSession, type TetherUser } from "../../src/api/schema/tether.ts";
import { contextWindow, prefixed } from "./context.ts";
import { errorMessage, type AgentLog } from "./log.ts";
import { CancelledError, type ChatProvider, ProviderError, type ToolCall, type ToolRound, withRetries } from "./providers/index.ts";
import type { SessionStore } from "./sessions.ts";
import type { ToolBox } from "./tools.ts";

/** Most tool rounds per user message before the answer ends with `tool_rounds_exceeded`. */
export const MAX_TOOL_ROUNDS = 8;

/** What the runtime needs from the outside. */
export interface RuntimeDeps {
  /** Undefined when no API key is configured. */
  provider: ChatProvider | undefined;
  /** Name of the variable that would configure the provider (for the no-key error). */
  missingKeyHint: string;
  sessions: SessionStore;
  systemPrompt: string;
  contextTurns: number;
  contextChars: number;
  maxAttempts: number;
  retryBaseMs: number;
  /** Send a guest -> host frame. */
  emit: (frame: TetherEgressDraft) => void;
  log: AgentLog;
  /** The tools offered to the model (AEGIS_AGENT_TOOLS=mcp); undefined for plain chat. */
  tools?: ToolBox;
}

interface Job {
  msgId: string;
  text: string;
  user?: TetherUser;
  controller: AbortController;
}

interface SessionState {
  session: TetherSession;
  queue: Job[];
  current?: Job;
  running: boolean;
}

/** How many recent message ids are remembered to drop redelivered frames. */
const SEEN_LIMIT = 2048;

/** The agent's message handling (no I/O of its own besides the provider and the session store). */
export class AgentRuntime {
  private readonly sessions = new Map<string, SessionState>();
  private readonly seen = new Set<string>();
  private readonly idle = new Set<() => void>();

  constructor(private readonly deps: RuntimeDeps) {}

  /** Handle one validated host -> guest frame. */
  handle(frame: TetherIngress): void {
    const state = this.stateFor(frame.session);
    if (frame.type === "control.cancel") {
      this.cancel(state, frame.payload.msg_id);
      return;
    }
    const msgId = frame.msg_id ?? newMsgId();
    this.deps.emit(egressFrame("event.ack", frame.session, { msg_id: msgId }, msgId));
    if (this.seen.has(msgId)) {
      this.deps.log.info(`message ${msgId} delivered again; acknowledged, not answered twice`);
      return;
    }
    this.remember(msgId);
    state.queue.push({ msgId, text: frame.payload.text, user: frame.payload.user, controller: new AbortController() });
    if (!state.running) void this.pump(state);
  }

  /** Abort everything (shutdown). */
  cancelAll(): void {
    for (const state of this.sessions.values()) {
      for (const job of state.queue) job.controller.abort();
      state.current?.controller.abort();
    }
  }

  /** Resolves once no session has queued or running work. */
  whenIdle(): Promise<void> {
    if (![...this.sessions.values()].some((s) => s.running)) return Promise.resolve();
    return new Promise((resolve) => this.idle.add(resolve));
  }

  private stateFor(session: TetherSession): SessionState {
    const key = JSON.stringify([session.channel, session.id]);
    let state = this.sessions.get(key);
    if (!state) {
      state = { session: { channel: session.channel, id: session.id }, queue: [], running: false };
      this.sessions.set(key, state);
    }
    return state;
  }

  private remember(msgId: string): void {
    this.seen.add(msgId);
    if (this.seen.size > SEEN_LIMIT) this.seen.delete(this.seen.values().next().value as string);
  }

  private cancel(state: SessionState, msgId: string | undefined): void {
    const current = state.current;
    if (msgId === undefined || current?.msgId === msgId) {
      if (current) {
        this.deps.log.info(`cancelling ${current.msgId} in session ${state.session.channel}/${state.session.id}`);
        current.controller.abort();
      }
      return;
    }
    const i = state.queue.findIndex((j) => j.msgId === msgId);
    if (i === -1) return;
    const [job] = state.queue.splice(i, 1);
    if (job) this.deps.emit(egressFrame("assistant.done", state.session, { text: "", error: { code: "cancelled", message: "cancelled before it started" } }, job.msgId));
  }

  private async pump(state: SessionState): Promise<void> {
    state.running = true;
    try {
      for (let job = state.queue.shift(); job; job = state.queue.shift()) {
        state.current = job;
        await this.answer(state.session, job);
        state.current = undefined;
      }
    } finally {
      state.running = false;
      state.current = undefined;
      if (![...this.sessions.values()].some((s) => s.running)) {
        for (const resolve of this.idle) resolve();
        this.idle.clear();
      }
    }
  }

  /** Run one request; always ends with `assistant.done` and `status.presence idle`. */
  private async answer(session: TetherSession, job: Job): Promise<void> {
    const { deps } = this;
    const presence = (state: "thinking" | "typing" | "idle") => deps.emit(egressFrame("status.presence", session, { state }, job.msgId));
    let text = "";
    let error: TetherError | undefined;
    const signal = job.controller.signal;
    presence("thinking");
    try {
      if (signal.aborted) throw new CancelledError();
      await deps.sessions.append(session, { role: "user", content: prefixed(job.text, job.user), ts: new Date().toISOString() });
      if (!deps.provider) throw new ProviderError("no_api_key", `no LLM API key: set ${deps.missingKeyHint} (e.g. aegis instance start --secret ${deps.missingKeyHint})`);
      const provider = deps.provider;
      const turns = await deps.sessions.load(session);
      const messages = contextWindow(
        turns.map((t) => ({ role: t.role, content: t.content })),
        { maxTurns: deps.contextTurns, maxChars: deps.contextChars },
      );
      const tools = deps.tools;
      const rounds: ToolRound[] = [];
      for (let round = 0; ; round++) {
        let roundText = "";
        let calls: ToolCall[] = [];
        await withRetries(
          async () => {
            const result = await provider.stream(
              { system: deps.systemPrompt, messages, ...(tools ? { tools: tools.specs, rounds } : {}) },
              {
                signal,
                onText: (chunk) => {
                  if (text === "") presence("typing");
                  text += chunk;
                  roundText += chunk;
                  deps.emit(egressFrame("assistant.delta", session, { text: chunk }, job.msgId));
                },
              },
            );
            calls = tools ? result.toolCalls : [];
          },
          {
            maxAttempts: deps.maxAttempts,
            baseMs: deps.retryBaseMs,
            signal,
            emitted: () => roundText !== "",
            onRetry: (err, n, delay) => deps.log.warn(`${job.msgId}: try ${n} failed (${err.code}), retrying in ${delay} ms`),
          },
        );
        if (!tools || calls.length === 0) break;
        if (round >= MAX_TOOL_ROUNDS) {
          throw new ProviderError("tool_rounds_exceeded", `the model still asked for tools (${calls.map((c) => c.name).join(", ")}) after ${MAX_TOOL_ROUNDS} rounds of tool calls; stopped`);
        }
        const results = [];
        for (const call of calls) {
          deps.log.info(`${job.msgId}: tool ${call.name} (${call.id})`);
          const result = await tools.call(call, signal);
          if (result.isError) deps.log.warn(`${job.msgId}: tool ${call.name} failed: ${result.content.slice(0, 300)}`);
          results.push(result);
        }
        if (signal.aborted) throw new CancelledError();
        rounds.push({ text: roundText, calls, results });
      }
    } catch (err) {
      error = toTetherError(err, signal);
      if (error.code === "cancelled") deps.log.info(`${job.msgId}: cancelled after ${text.length} characters`);
      else deps.log.error(`${job.msgId}: ${error.code}: ${error.message}`);
    }
    try {
      if (text !== "") await deps.sessions.append(session, { role: "assistant", content: text, ts: new Date().toISOString() });
    } catch (err) {
      deps.log.error(`${job.msgId}: could not save the answer to ${deps.sessions.fileFor(session)}: ${errorMessage(err)}`);
      error ??= { code: "session_write_failed", message: `could not save the answer: ${errorMessage(err)}` };
    }
    deps.emit(egressFrame("assistant.done", session, error ? { text, error } : { text }, job.msgId));
    presence("idle");
  }
}

/** The `assistant.done.error` for any failure. */
export function toTetherError(err: unknown, signal: AbortSignal): TetherError {
  if (err instanceof CancelledError || signal.aborted) return { code: "cancelled", message: "cancelled" };
  if (err instanceof ProviderError) return { code: err.code, message: err.message };
  return { code: "internal", message: errorMessage(err) };
}

/**
 * @module mcp/tools/tether
 * Talking to an Agent Kit instance over the tether (spec: agent-kit.md):
 * `tether_send` posts a `user.message` (waking the instance), `tether_read`
 * returns the guest's frames after a sequence number, waiting a bounded time
 * for them. Both directions share one per-instance sequence, so the `seq`
 * tether_send returns is the `after_seq` to read the reply from.
 *
 * tether_read returns as soon as it has something: by default when an
 * `assistant.done` arrives (the complete reply), or with `until_done: false`
 * once frames stop arriving for a moment; otherwise after `wait_s`, with
 * what it has. It never returns more than {@link READ_MAX_BYTES} of frames;
 * `next_after_seq` continues where it stopped.
 */
import { z } from "zod";
import { MAX_FRAME_TEXT, type TetherEgressFrame } from "../../api/schema/tether.ts";
import { ok } from "../result.ts";
import { defineTool } from "../tool.ts";
import { InstanceRef } from "./_fields.ts";

/** The tether channel name MCP conversations use. */
export const MCP_CHANNEL = "mcp";
/** Longest wait of one tether_read. */
export const READ_MAX_WAIT_S = 30;
/** Most frame bytes (JSON) one tether_read returns. */
export const READ_MAX_BYTES = 1024 * 1024;
/** With until_done false: how long the stream must be quiet before returning what arrived. */
const QUIET_MS = 300;

/** `promise`'s value, or "timeout" after `ms`. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | "timeout"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([promise, new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

const Session = z.string().min(1).max(128).default("default").describe('Conversation id within the "mcp" channel (default "default"); each id is a separate conversation for the agent');

const tetherSend = defineTool({
  name: "tether_send",
  title: "Send a message to an agent instance",
  description: `Send a text message to the agent running in an Agent Kit instance (a user.message tether frame on channel "${MCP_CHANNEL}"); a paused or stopped instance is woken. Returns the message's msg_id and seq: read the reply with tether_read(after_seq: seq). Text up to ${MAX_FRAME_TEXT} characters.`,
  input: z
    .object({
      instance: InstanceRef,
      text: z.string().min(1).max(MAX_FRAME_TEXT).describe("The message"),
      session: Session,
    })
    .strict(),
  async run({ instance, text, session }, { link }) {
    return link.call(async (c) => ok(await c.tetherSend(instance, { v: 1, type: "user.message", session: { channel: MCP_CHANNEL, id: session }, payload: { text } })));
  },
});

const tetherRead = defineTool({
  name: "tether_read",
  title: "Read an agent instance's replies",
  description: `Read the frames an Agent Kit instance sent (assistant.done with the full reply text, and with include_deltas also assistant.delta chunks, status.presence and event.ack) with seq greater than after_seq. Waits up to wait_s seconds (default 10, at most ${READ_MAX_WAIT_S}): until an assistant.done arrives, or with until_done: false until frames stop arriving. Returns frames, next_after_seq (pass it as after_seq next time), done (an assistant.done was included) and timed_out. At most ${READ_MAX_BYTES / 1024} KiB of frames per call; truncated says more are waiting.`,
  input: z
    .object({
      instance: InstanceRef,
      after_seq: z.number().int().min(0).default(0).describe("Return frames with a greater seq (tether_send's seq, or the last next_after_seq)"),
      wait_s: z.number().min(0).max(READ_MAX_WAIT_S).default(10).describe(`Seconds to wait for frames (0: only what is there; at most ${READ_MAX_WAIT_S})`),
      until_done: z.boolean().default(true).describe("Wait for an assistant.done (the complete reply) rather than returning at the first frames"),
      include_deltas: z.boolean().default(false).describe("Also return assistant.delta, status.presence and event.ack frames"),
      session: z.string().min(1).max(128).optional().describe('Only frames of this conversation id (channel "mcp"); all channels when absent'),
      max_frames: z.number().int().min(1).max(1000).default(200).describe("Most frames to return"),
    })
    .strict(),
  readOnly: true,
  async run(args, { link, signal }) {
    return link.call(async (c) => {
      const abort = new AbortController();
      const onAbort = () => abort.abort();
      signal.addEventListener("abort", onAbort);
      const frames: TetherEgressFrame[] = [];
      let next = args.after_seq;
      let bytes = 0;
      let done = false;
      let truncated = false;
      let timedOut = false;
      const keep = (f: TetherEgressFrame) => {
        if (args.session !== undefined && (f.session.channel !== MCP_CHANNEL || f.session.id !== args.session)) return false;
        return args.include_deltas || f.type === "assistant.done";
      };
      // wait_s 0 is a snapshot read: only what is stored, no live stream to race.
      const stream = c.tetherFrames(args.instance, args.after_seq, args.wait_s > 0, abort.signal);
      const deadline = Date.now() + args.wait_s * 1000;
      let pending = stream.next();
      try {
        for (;;) {
          const quiet = !args.until_done && frames.length > 0;
          const step = args.wait_s === 0 ? await pending : await within(pending, Math.max(0, Math.min(deadline - Date.now(), quiet ? QUIET_MS : Number.POSITIVE_INFINITY)));
          if (step === "timeout") {
            timedOut = !quiet && !done;
            break;
          }
          if (step.done) break;
          pending = stream.next();
          const f = step.value;
          if (keep(f)) {
            const size = JSON.stringify(f).length;
            if (frames.length >= args.max_frames || (bytes + size > READ_MAX_BYTES && frames.length > 0)) {
              truncated = true;
              break;
            }
            frames.push(f);
            bytes += size;
            if (f.type === "assistant.done") done = true;
          }
          next = f.seq;
          if (done && args.until_done) break;
        }
      } catch (err) {
        // The caller gets this failure; the outstanding read is the one that failed.
        pending = Promise.resolve({ done: true, value: undefined });
        throw err;
      } finally {
        signal.removeEventListener("abort", onAbort);
        abort.abort();
        // The outstanding read ends with the abort; anything else it ends with is worth a line on stderr.
        await pending.then(
          () => undefined,
          (err: unknown) => {
            if ((err as Error).name !== "AbortError") link.note(`tether stream of ${args.instance}: ${(err as Error).message}`);
          },
        );
      }
      return ok({ frames, next_after_seq: next, done, timed_out: timedOut, truncated });
    });
  },
});

/** The tether tools. */
export const tetherTools = [tetherSend, tetherRead];

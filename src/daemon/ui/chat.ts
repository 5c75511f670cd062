/**
 * @module daemon/ui/chat
 * The tether chat of one instance's page (an Agent Kit instance's agent):
 * `POST /instances/:id/chat {text}` sends a `user.message` on the `ui`
 * channel (waking the instance, as any tether message does), and
 * `GET /instances/:id/chat/stream` is an SSE stream of the guest's frames
 * (`assistant.delta`, `assistant.done`, `status.presence`, `event.ack`),
 * recent ones first, held to the browser's pace by the tether follower so a
 * slow tab costs the daemon nothing.
 *
 * One conversation per instance in the UI (`session {channel: "ui", id:
 * "ui"}`): the page is one user's console, like `docker attach`.
 */
import type { Context } from "hono";
import { streamSSE } from "hono/streaming";
import { z } from "zod";
import { MAX_FRAME_TEXT } from "../../api/schema/tether.ts";
import { jsonBody } from "../api/validate.ts";
import type { TetherService } from "../tether/service.ts";

/** The UI's tether session. */
export const UI_SESSION = { channel: "ui", id: "ui" } as const;

const ChatBody = z.object({ text: z.string().min(1, "must not be empty").max(MAX_FRAME_TEXT, `must be at most ${MAX_FRAME_TEXT} characters`) }).strict();

/** Send the page's message; answers the stored `{msg_id, seq}`. */
export async function sendChat(c: Context, tether: TetherService, ref: string): Promise<{ msg_id: string; seq: number }> {
  const { text } = await jsonBody(c, ChatBody);
  return tether.ingress(ref, { v: 1, type: "user.message", session: { ...UI_SESSION }, payload: { text } });
}

/** `frame` events: the guest's frames as stored (type, seq, reply_to, session, payload). */
export function chatEvents(c: Context, tether: TetherService, ref: string): Response {
  return streamSSE(c, async (stream) => {
    const abort = new AbortController();
    stream.onAbort(() => abort.abort());
    await stream.writeSSE({ event: "hello", data: "{}" });
    await tether.follow(
      ref,
      undefined,
      async (f) => {
        const { type, seq, reply_to, session, payload } = f;
        await stream.writeSSE({ event: "frame", data: JSON.stringify({ type, seq, reply_to, session, payload }) });
      },
      abort.signal,
    );
  });
}

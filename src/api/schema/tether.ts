/**
 * @module api/schema/tether
 * Tether frames (spec/agent-kit.md "Tether protocol"), shared by aegisd, the
 * guest harness, the agent runtime and the gateway.
 *
 * Every frame has the same envelope: `v` (always 1), `type`, `ts`,
 * `session {channel, id}`, `msg_id`, `seq` and a `payload` whose shape depends
 * on `type`. Six types exist; the direction is implied by the type:
 *
 * | direction    | types                                                        |
 * |--------------|--------------------------------------------------------------|
 * | host -> guest | `user.message`, `control.cancel`                            |
 * | guest -> host | `assistant.delta`, `assistant.done`, `status.presence`, `event.ack` |
 *
 * A *draft* frame may omit `ts`, `msg_id` and `seq` (what clients POST and what
 * the agent emits); {@link completeFrame} fills them. A *stored* frame has all
 * three. One optional envelope field goes beyond the spec: `reply_to`, the
 * `msg_id` of the `user.message` a guest->host frame answers, so a renderer
 * can thread the reply under the right chat message.
 */
import { z } from "zod";

/** The only envelope version. */
export const TETHER_VERSION = 1;

/** Host -> guest frame types (what `POST /v1/instances/{id}/tether` accepts). */
export const HOST_TO_GUEST_TYPES = ["user.message", "control.cancel"] as const;

/** Guest -> host frame types (what `GET /v1/instances/{id}/tether/stream` carries). */
export const GUEST_TO_HOST_TYPES = ["assistant.delta", "assistant.done", "status.presence", "event.ack"] as const;

/** Every frame type. */
export const TETHER_TYPES = [...HOST_TO_GUEST_TYPES, ...GUEST_TO_HOST_TYPES] as const;

export type HostToGuestType = (typeof HOST_TO_GUEST_TYPES)[number];
export type GuestToHostType = (typeof GUEST_TO_HOST_TYPES)[number];
export type TetherType = (typeof TETHER_TYPES)[number];

/** Direction of a frame type: `ingress` (host -> guest) or `egress` (guest -> host). */
export function directionOf(type: TetherType): "ingress" | "egress" {
  return (HOST_TO_GUEST_TYPES as readonly string[]).includes(type) ? "ingress" : "egress";
}

/** Text without NUL or other C0 control characters except tab and newlines. */
const noControl = (s: string) => !/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/.test(s);

/** A conversation: the channel (`telegram`, `test`, ...) and the conversation id within it. */
export const TetherSession = z
  .object({
    channel: z.string().min(1, "must not be empty").max(64, "must be at most 64 characters").refine(noControl, "must not contain control characters"),
    id: z.string().min(1, "must not be empty").max(128, "must be at most 128 characters").refine(noControl, "must not contain control characters"),
  })
  .strict();
export type TetherSession = z.infer<typeof TetherSession>;

/** A message id: opaque, printable, at most 128 characters. */
export const MsgId = z.string().min(1, "must not be empty").max(128, "must be at most 128 characters").refine(noControl, "must not contain control characters");

/** Who wrote a `user.message` (group chats need it for the `[name]: ` prefix). */
export const TetherUser = z
  .object({
    id: z.string().max(128).optional(),
    username: z.string().max(128).optional(),
    name: z.string().max(256).optional(),
  })
  .strict();
export type TetherUser = z.infer<typeof TetherUser>;

// The frame cap lives in guest-wire.ts (the harness relays frames without these schemas).
export { MAX_FRAME_BYTES } from "./guest-wire.ts";

/** Size of a frame as JSON bytes (what {@link MAX_FRAME_BYTES} limits). */
export function frameBytes(frame: unknown): number {
  return Buffer.byteLength(JSON.stringify(frame));
}

/** Largest text one frame carries (1 MiB of characters; the frame must also fit {@link MAX_FRAME_BYTES}). */
export const MAX_FRAME_TEXT = 1024 * 1024;
const Text = z.string().max(MAX_FRAME_TEXT, `must be at most ${MAX_FRAME_TEXT} characters`);

/** Payload of `user.message`. */
export const UserMessagePayload = z.object({ text: Text.min(1, "must not be empty"), user: TetherUser.optional() }).strict();
/** Payload of `control.cancel`: the message to cancel, or whatever is in flight for the session. */
export const ControlCancelPayload = z.object({ msg_id: MsgId.optional() }).strict();
/** Payload of `assistant.delta`: the next chunk of text. */
export const AssistantDeltaPayload = z.object({ text: Text }).strict();
/** An error that ended a response (`cancelled`, `unauthorized`, `rate_limited`, ...). */
export const TetherError = z.object({ code: z.string().min(1).max(64), message: z.string().max(4096) }).strict();
export type TetherError = z.infer<typeof TetherError>;
/** Payload of `assistant.done`: the complete text (partial when `error` is set). */
export const AssistantDonePayload = z.object({ text: Text, error: TetherError.optional() }).strict();
/** Payload of `status.presence`. */
export const StatusPresencePayload = z.object({ state: z.enum(["thinking", "typing", "idle"]) }).strict();
/** Payload of `event.ack`: the acknowledged message. */
export const EventAckPayload = z.object({ msg_id: MsgId }).strict();

/** Payload schema of each frame type. */
export const PAYLOADS = {
  "user.message": UserMessagePayload,
  "control.cancel": ControlCancelPayload,
  "assistant.delta": AssistantDeltaPayload,
  "assistant.done": AssistantDonePayload,
  "status.presence": StatusPresencePayload,
  "event.ack": EventAckPayload,
} as const satisfies Record<TetherType, z.ZodType>;

/** Envelope fields shared by drafts; `ts`, `msg_id`, `seq` may be absent. */
const draftEnvelope = {
  v: z.literal(TETHER_VERSION, { error: "must be 1" }),
  ts: z.iso.datetime({ offset: true, error: "must be an ISO-8601 timestamp" }).optional(),
  session: TetherSession,
  msg_id: MsgId.optional(),
  seq: z.number().int().min(0).optional(),
  reply_to: MsgId.optional(),
};

/** Envelope fields of a complete (stored, streamed) frame. */
const completeEnvelope = {
  ...draftEnvelope,
  ts: z.iso.datetime({ offset: true, error: "must be an ISO-8601 timestamp" }),
  msg_id: MsgId,
  seq: z.number().int().min(1),
};

function draftOf<T extends TetherType>(type: T) {
  return z.object({ ...draftEnvelope, type: z.literal(type), payload: PAYLOADS[type] }).strict();
}
function completeOf<T extends TetherType>(type: T) {
  return z.object({ ...completeEnvelope, type: z.literal(type), payload: PAYLOADS[type] }).strict();
}

/** Draft schemas per type. */
const drafts = {
  "user.message": draftOf("user.message"),
  "control.cancel": draftOf("control.cancel"),
  "assistant.delta": draftOf("assistant.delta"),
  "assistant.done": draftOf("assistant.done"),
  "status.presence": draftOf("status.presence"),
  "event.ack": draftOf("event.ack"),
};

/** Complete schemas per type. */
const completes = {
  "user.message": completeOf("user.message"),
  "control.cancel": completeOf("control.cancel"),
  "assistant.delta": completeOf("assistant.delta"),
  "assistant.done": completeOf("assistant.done"),
  "status.presence": completeOf("status.presence"),
  "event.ack": completeOf("event.ack"),
};

/** Any frame, `ts`/`msg_id`/`seq` optional. */
export const TetherFrameDraft = z.discriminatedUnion("type", [
  drafts["user.message"],
  drafts["control.cancel"],
  drafts["assistant.delta"],
  drafts["assistant.done"],
  drafts["status.presence"],
  drafts["event.ack"],
]);
export type TetherFrameDraft = z.infer<typeof TetherFrameDraft>;

/** Any complete frame (as stored by aegisd and streamed to clients). */
export const TetherFrame = z.discriminatedUnion("type", [
  completes["user.message"],
  completes["control.cancel"],
  completes["assistant.delta"],
  completes["assistant.done"],
  completes["status.presence"],
  completes["event.ack"],
]);
export type TetherFrame = z.infer<typeof TetherFrame>;

/**
 * Body of `POST /v1/instances/{id}/tether`: a host -> guest draft frame.
 * Strict: unknown types (including guest -> host ones), unknown fields and
 * wrong payloads are rejected, so the route can answer 400.
 */
export const TetherIngress = z.discriminatedUnion("type", [drafts["user.message"], drafts["control.cancel"]]);
export type TetherIngress = z.infer<typeof TetherIngress>;

/** A complete host -> guest frame (what the harness hands to the agent). */
export const TetherIngressFrame = z.discriminatedUnion("type", [completes["user.message"], completes["control.cancel"]]);
export type TetherIngressFrame = z.infer<typeof TetherIngressFrame>;

/** A guest -> host draft frame (what the agent emits; aegisd assigns `seq`). */
export const TetherEgressDraft = z.discriminatedUnion("type", [drafts["assistant.delta"], drafts["assistant.done"], drafts["status.presence"], drafts["event.ack"]]);
export type TetherEgressDraft = z.infer<typeof TetherEgressDraft>;

/** A complete guest -> host frame (one line of the tether stream). */
export const TetherEgressFrame = z.discriminatedUnion("type", [completes["assistant.delta"], completes["assistant.done"], completes["status.presence"], completes["event.ack"]]);
export type TetherEgressFrame = z.infer<typeof TetherEgressFrame>;

/** `202` answer of `POST /v1/instances/{id}/tether`. */
export const TetherAccepted = z.object({ msg_id: MsgId, seq: z.number().int().min(1) }).strict();
export type TetherAccepted = z.infer<typeof TetherAccepted>;

/** Query of `GET /v1/instances/{id}/tether/stream`. */
export const TetherStreamQuery = z
  .object({
    after_seq: z.coerce.number().int().min(0, "must be a non-negative integer").optional(),
    /** `false`: end the stream after the replay (a snapshot read); live frames follow by default. */
    follow: z.enum(["true", "false"], { error: 'must be "true" or "false"' }).optional(),
  })
  .strict();

/** A new random message id. */
export function newMsgId(): string {
  return crypto.randomUUID();
}

/**
 * Fill the missing `msg_id` (random), `ts` (now) and `seq` (given) of a draft.
 * Values already present are kept, except `seq`, which the store owning the
 * sequence always assigns.
 */
export function completeFrame<F extends TetherFrameDraft>(
  draft: F,
  fill: { seq: number; now?: Date; msgId?: string },
): F & { ts: string; msg_id: string; seq: number } {
  return {
    ...draft,
    ts: draft.ts ?? (fill.now ?? new Date()).toISOString(),
    msg_id: draft.msg_id ?? fill.msgId ?? newMsgId(),
    seq: fill.seq,
  };
}

/** Build a guest -> host draft frame with a fresh `msg_id` and `ts` (no `seq`: aegisd assigns it). */
export function egressFrame<T extends GuestToHostType>(
  type: T,
  session: TetherSession,
  payload: z.infer<(typeof PAYLOADS)[T]>,
  replyTo?: string,
): TetherEgressDraft {
  const frame = { v: TETHER_VERSION, type, ts: new Date().toISOString(), session, msg_id: newMsgId(), payload } as Record<string, unknown>;
  if (replyTo !== undefined) frame.reply_to = replyTo;
  return frame as TetherEgressDraft;
}

/**
 * @module daemon/tether/store
 * TetherStore: every tether frame of every instance, in both directions,
 * numbered by one per-instance sequence, persisted in the registry (so a
 * daemon restart loses nothing) and published live to stream subscribers.
 * Replay-then-live is atomic: `subscribe` reads the stored frames after
 * `afterSeq` and registers the listener in one synchronous step, so a
 * reconnecting client sees every frame exactly once.
 *
 * Bounded (frames come from a hostile guest, too):
 * - each frame's JSON is at most `MAX_FRAME_BYTES` (1 MiB, checked by the
 *   service before `append`, see api/schema/tether.ts);
 * - per instance: at most `maxFrames` frames and `maxBytes` bytes as stored
 *   (default 2000 frames, 32 MiB), the oldest dropped first, and nothing
 *   older than `maxAgeMs` (7 days);
 * - stored compactly: a frame's JSON up to {@link COMPRESS_FROM_BYTES} is
 *   kept as UTF-8 bytes; a larger one is deflated (a frame of escaped
 *   control characters, 6 bytes each as JSON, shrinks ~100x; ordinary text
 *   ~3x). Both are BLOBs, told apart by the first byte (`{` for JSON); the
 *   byte budget counts the stored size;
 * - replay reads through SQL `LIMIT`: the recent frames of a stream without
 *   `after_seq` come from `ORDER BY seq DESC LIMIT n`, and a replay after a
 *   sequence is read in pages, so no query loads an instance's whole log.
 */
import type { Database } from "bun:sqlite";
import { deflateSync, inflateSync } from "node:zlib";

/** Frames whose JSON is longer than this are stored deflated. */
export const COMPRESS_FROM_BYTES = 4096;
/** Rows read per query while replaying. */
const REPLAY_PAGE = 200;
const OPEN_BRACE = 0x7b;

/** A tether frame as stored (the envelope, with `seq` filled in). */
export type StoredFrame = Record<string, unknown> & { seq: number };

/** Which way a frame travels. */
export type Direction = "ingress" | "egress";

type Listener = (frame: StoredFrame) => void;

/** Retention limits. */
export interface TetherLimits {
  /** Frames kept per instance (oldest dropped first). */
  maxFrames: number;
  /** Frames older than this are dropped (ms). */
  maxAgeMs: number;
  /** Bytes kept per instance, as stored (oldest dropped first). */
  maxBytes: number;
}

/** Default retention: 2000 frames, 32 MiB and 7 days per instance. */
export const DEFAULT_TETHER_LIMITS: TetherLimits = { maxFrames: 2000, maxAgeMs: 7 * 24 * 3600 * 1000, maxBytes: 32 * 1024 * 1024 };

/** Encode a frame's JSON for the `frame` column. */
export function encodeStored(json: string): Uint8Array {
  const bytes = Buffer.from(json);
  return bytes.length > COMPRESS_FROM_BYTES ? deflateSync(bytes) : bytes;
}

/** Decode a `frame` column value (also the TEXT rows written before frames became BLOBs). */
export function decodeStored(value: string | Uint8Array): StoredFrame {
  if (typeof value === "string") return JSON.parse(value) as StoredFrame;
  const bytes = value[0] === OPEN_BRACE ? value : inflateSync(value);
  return JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8")) as StoredFrame;
}

/** Per-instance sequenced frame log with pub/sub. */
export class TetherStore {
  private readonly listeners = new Map<string, Set<Listener>>();
  /** Stored bytes per instance (loaded on first append, kept up to date, recomputed by prune). */
  private readonly bytes = new Map<string, number>();
  private readonly limits: TetherLimits;

  constructor(
    private readonly db: Database,
    limits: Partial<TetherLimits> = {},
  ) {
    this.limits = { ...DEFAULT_TETHER_LIMITS, ...limits };
  }

  /** Bytes an instance's frames take as stored. */
  storedBytes(instanceId: string): number {
    const row = this.db.query(`SELECT COALESCE(SUM(length(frame)), 0) AS n FROM tether_frames WHERE instance_id = $id`).get({ id: instanceId }) as { n: number };
    return row.n;
  }

  /** The highest sequence number ever used by an instance (0 when none); pruning never lowers it. */
  lastSeq(instanceId: string): number {
    const row = this.db.query(`SELECT last_seq FROM tether_seq WHERE instance_id = $id`).get({ id: instanceId }) as { last_seq: number } | null;
    return row?.last_seq ?? 0;
  }

  /** The last ingress frame handed to the guest (0 when none): later ones are still to deliver. */
  deliveredSeq(instanceId: string): number {
    const row = this.db.query(`SELECT delivered_seq FROM tether_seq WHERE instance_id = $id`).get({ id: instanceId }) as { delivered_seq: number } | null;
    return row?.delivered_seq ?? 0;
  }

  /** Ingress frame `seq` was handed to the guest (written to its control channel's socket). */
  markDelivered(instanceId: string, seq: number): void {
    this.db.query(`UPDATE tether_seq SET delivered_seq = MAX(delivered_seq, $seq) WHERE instance_id = $id`).run({ id: instanceId, seq });
  }

  /** A stored frame of one direction with this `msg_id`, if any (idempotent ingress). */
  findByMsgId(instanceId: string, direction: Direction, msgId: string): StoredFrame | null {
    const row = this.db
      .query(`SELECT frame FROM tether_frames WHERE instance_id = $id AND direction = $direction AND msg_id = $msg_id LIMIT 1`)
      .get({ id: instanceId, direction, msg_id: msgId }) as { frame: string | Uint8Array } | null;
    return row ? decodeStored(row.frame) : null;
  }

  /** Store a frame, assigning its `seq`; egress frames are published to subscribers. */
  append(instanceId: string, direction: Direction, frame: Record<string, unknown>): StoredFrame {
    const stored = this.db.transaction(() => {
      const seq = this.lastSeq(instanceId) + 1;
      this.db
        .query(`INSERT INTO tether_seq (instance_id, last_seq) VALUES ($id, $seq) ON CONFLICT(instance_id) DO UPDATE SET last_seq = excluded.last_seq`)
        .run({ id: instanceId, seq });
      const withSeq: StoredFrame = { ...frame, seq };
      const msgId = typeof frame.msg_id === "string" ? frame.msg_id : null;
      const encoded = encodeStored(JSON.stringify(withSeq));
      this.db
        .query(`INSERT INTO tether_frames (instance_id, seq, direction, msg_id, frame, created_at) VALUES ($id, $seq, $direction, $msg_id, $frame, $now)`)
        .run({ id: instanceId, seq, direction, msg_id: msgId, frame: encoded, now: Date.now() });
      const total = (this.bytes.get(instanceId) ?? this.storedBytes(instanceId) - encoded.length) + encoded.length;
      this.bytes.set(instanceId, total);
      if (seq % 100 === 0 || total > this.limits.maxBytes) this.prune(instanceId);
      return withSeq;
    })();
    if (direction === "egress") for (const l of this.listeners.get(instanceId) ?? []) l(stored);
    return stored;
  }

  /** Stored frames of one direction after `afterSeq`, oldest first (at most `limit`; -1 = all). */
  frames(instanceId: string, direction: Direction, afterSeq = 0, limit = -1): StoredFrame[] {
    return (
      this.db
        .query(`SELECT frame FROM tether_frames WHERE instance_id = $id AND direction = $direction AND seq > $after ORDER BY seq LIMIT $limit`)
        .all({ id: instanceId, direction, after: afterSeq, limit }) as { frame: string | Uint8Array }[]
    ).map((r) => decodeStored(r.frame));
  }

  /** The most recent `n` stored frames of one direction, oldest first (one `LIMIT` query). */
  recent(instanceId: string, direction: Direction, n: number): StoredFrame[] {
    return (
      this.db
        .query(`SELECT frame FROM tether_frames WHERE instance_id = $id AND direction = $direction ORDER BY seq DESC LIMIT $n`)
        .all({ id: instanceId, direction, n }) as { frame: string | Uint8Array }[]
    )
      .map((r) => decodeStored(r.frame))
      .reverse();
  }

  /**
   * Replay egress frames after `afterSeq` (or the most recent `recent` when
   * `afterSeq` is undefined), then deliver live ones. Returns unsubscribe.
   */
  subscribe(instanceId: string, afterSeq: number | undefined, onFrame: Listener, recent = 50): () => void {
    if (afterSeq === undefined) {
      for (const f of this.recent(instanceId, "egress", recent)) onFrame(f);
    } else {
      // Paged, still synchronous (no frame can be appended between the pages and the registration below).
      for (let after = afterSeq; ; ) {
        const page = this.frames(instanceId, "egress", after, REPLAY_PAGE);
        for (const f of page) onFrame(f);
        if (page.length < REPLAY_PAGE) break;
        after = page.at(-1)!.seq;
      }
    }
    let set = this.listeners.get(instanceId);
    if (!set) {
      set = new Set();
      this.listeners.set(instanceId, set);
    }
    set.add(onFrame);
    return () => set.delete(onFrame);
  }

  /** Drop frames beyond the count, byte and age limits. */
  prune(instanceId: string): void {
    this.db
      .query(`DELETE FROM tether_frames WHERE instance_id = $id AND seq <= (SELECT MAX(seq) FROM tether_frames WHERE instance_id = $id) - $max`)
      .run({ id: instanceId, max: this.limits.maxFrames });
    // The newest frames whose running total (newest first) fits the budget stay; every older one goes.
    this.db
      .query(
        `DELETE FROM tether_frames WHERE instance_id = $id AND seq <= (
           SELECT seq FROM (SELECT seq, SUM(length(frame)) OVER (ORDER BY seq DESC) AS total FROM tether_frames WHERE instance_id = $id)
           WHERE total > $max ORDER BY seq DESC LIMIT 1)`,
      )
      .run({ id: instanceId, max: this.limits.maxBytes });
    this.db.query(`DELETE FROM tether_frames WHERE created_at < $cutoff`).run({ cutoff: Date.now() - this.limits.maxAgeMs });
    this.bytes.set(instanceId, this.storedBytes(instanceId));
  }

  /** Forget an instance's frames (instance deleted). */
  deleteInstance(instanceId: string): void {
    this.db.query(`DELETE FROM tether_frames WHERE instance_id = $id`).run({ id: instanceId });
    this.db.query(`DELETE FROM tether_seq WHERE instance_id = $id`).run({ id: instanceId });
    this.listeners.delete(instanceId);
    this.bytes.delete(instanceId);
  }
}

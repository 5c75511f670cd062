/**
 * @module daemon/tether/store
 * TetherStore: every tether frame of every instance, in both directions,
 * numbered by one per-instance sequence, persisted in the registry (so a
 * daemon restart loses nothing) and published live to stream subscribers.
 * Pruned by count per instance and by age. Replay-then-live is atomic:
 * `subscribe` reads the stored frames after `afterSeq` and registers the
 * listener in one synchronous step, so a reconnecting client sees every
 * frame exactly once.
 */
import type { Database } from "bun:sqlite";

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
}

/** Per-instance sequenced frame log with pub/sub. */
export class TetherStore {
  private readonly listeners = new Map<string, Set<Listener>>();

  constructor(
    private readonly db: Database,
    private readonly limits: TetherLimits = { maxFrames: 2000, maxAgeMs: 7 * 24 * 3600 * 1000 },
  ) {}

  /** The highest sequence number ever used by an instance (0 when none); pruning never lowers it. */
  lastSeq(instanceId: string): number {
    const row = this.db.query(`SELECT last_seq FROM tether_seq WHERE instance_id = $id`).get({ id: instanceId }) as { last_seq: number } | null;
    return row?.last_seq ?? 0;
  }

  /** A stored frame of one direction with this `msg_id`, if any (idempotent ingress). */
  findByMsgId(instanceId: string, direction: Direction, msgId: string): StoredFrame | null {
    const row = this.db
      .query(`SELECT frame FROM tether_frames WHERE instance_id = $id AND direction = $direction AND msg_id = $msg_id LIMIT 1`)
      .get({ id: instanceId, direction, msg_id: msgId }) as { frame: string } | null;
    return row ? (JSON.parse(row.frame) as StoredFrame) : null;
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
      this.db
        .query(`INSERT INTO tether_frames (instance_id, seq, direction, msg_id, frame, created_at) VALUES ($id, $seq, $direction, $msg_id, $frame, $now)`)
        .run({ id: instanceId, seq, direction, msg_id: msgId, frame: JSON.stringify(withSeq), now: Date.now() });
      if (seq % 100 === 0) this.prune(instanceId);
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
        .all({ id: instanceId, direction, after: afterSeq, limit }) as { frame: string }[]
    ).map((r) => JSON.parse(r.frame) as StoredFrame);
  }

  /**
   * Replay egress frames after `afterSeq` (or the most recent `recent` when
   * `afterSeq` is undefined), then deliver live ones. Returns unsubscribe.
   */
  subscribe(instanceId: string, afterSeq: number | undefined, onFrame: Listener, recent = 50): () => void {
    const replay =
      afterSeq !== undefined
        ? this.frames(instanceId, "egress", afterSeq)
        : this.frames(instanceId, "egress", 0).slice(-recent);
    for (const f of replay) onFrame(f);
    let set = this.listeners.get(instanceId);
    if (!set) {
      set = new Set();
      this.listeners.set(instanceId, set);
    }
    set.add(onFrame);
    return () => set.delete(onFrame);
  }

  /** Drop frames beyond the count and age limits. */
  prune(instanceId: string): void {
    this.db
      .query(`DELETE FROM tether_frames WHERE instance_id = $id AND seq <= (SELECT MAX(seq) FROM tether_frames WHERE instance_id = $id) - $max`)
      .run({ id: instanceId, max: this.limits.maxFrames });
    this.db.query(`DELETE FROM tether_frames WHERE created_at < $cutoff`).run({ cutoff: Date.now() - this.limits.maxAgeMs });
  }

  /** Forget an instance's frames (instance deleted). */
  deleteInstance(instanceId: string): void {
    this.db.query(`DELETE FROM tether_frames WHERE instance_id = $id`).run({ id: instanceId });
    this.db.query(`DELETE FROM tether_seq WHERE instance_id = $id`).run({ id: instanceId });
    this.listeners.delete(instanceId);
  }
}

/**
 * @module daemon/logs/log-store
 * Output logs of tasks (and later instances): each owner's log is an NDJSON
 * file `AEGIS_HOME/instances/<id>/output.ndjson`, appended synchronously so a
 * daemon crash loses nothing already acknowledged, plus live subscribers for
 * `?follow=true`. Replaying the file and subscribing happen in one
 * synchronous step, so a follower sees every line exactly once.
 *
 * Slow followers (api/tasks.ts) never make the store buffer: they read
 * pages from the files by seq ({@link LogStore.linesAfter}) until they are
 * caught up, and only then take live lines ({@link LogStore.listen}).
 *
 * Rotation: when the file passes `maxBytes` it becomes `output.1.ndjson`
 * (replacing the previous generation), so a chatty instance keeps between
 * one and two files' worth of its most recent output.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, statSync } from "node:fs";
import { join } from "node:path";
import { encodeChunk } from "../../api/log-chunks.ts";
import type { LogLine } from "../../api/schema/tasks.ts";

type OutputLine = Extract<LogLine, { type: "output" }>;
type Stream = OutputLine["stream"];
type Listener = (line: OutputLine | null) => void;

interface Owner {
  file: string;
  bytes: number;
  seq: number;
  closed: boolean;
  listeners: Set<Listener>;
}

/** Log files and live subscribers, keyed by task or instance id. */
export class LogStore {
  private readonly owners = new Map<string, Owner>();

  constructor(
    private readonly root: string,
    private readonly maxBytes = 16 * 1024 * 1024,
  ) {}

  private rotated(file: string): string {
    return file.replace(/\.ndjson$/, ".1.ndjson");
  }

  private owner(id: string): Owner {
    let o = this.owners.get(id);
    if (!o) {
      const dir = join(this.root, id);
      const file = join(dir, "output.ndjson");
      const stored = this.readAll(file);
      const seq = stored.at(-1)?.seq ?? 0;
      o = { file, bytes: existsSync(file) ? statSync(file).size : 0, seq, closed: false, listeners: new Set() };
      this.owners.set(id, o);
    }
    return o;
  }

  private readAll(file: string): OutputLine[] {
    return [...this.readLines(this.rotated(file)), ...this.readLines(file)];
  }

  private readLines(file: string): OutputLine[] {
    if (!existsSync(file)) return [];
    const text = readFileSync(file, "utf8");
    return text
      .split("\n")
      .filter((l) => l.length > 0)
      .map((l) => JSON.parse(l) as OutputLine);
  }

  /** Append one chunk of a stream. */
  append(id: string, stream: Stream, bytes: Uint8Array): void {
    const o = this.owner(id);
    const line: OutputLine = { type: "output", seq: ++o.seq, ts: new Date().toISOString(), stream, ...encodeChunk(bytes) };
    mkdirSync(join(this.root, id), { recursive: true, mode: 0o700 });
    const text = `${JSON.stringify(line)}\n`;
    if (o.bytes > 0 && o.bytes + text.length > this.maxBytes) {
      renameSync(o.file, this.rotated(o.file));
      o.bytes = 0;
    }
    appendFileSync(o.file, text, { mode: 0o600 });
    o.bytes += Buffer.byteLength(text);
    for (const l of o.listeners) l(line);
  }

  /** Append a human note from Aegis itself (boot failure, crash details). */
  note(id: string, text: string): void {
    this.append(id, "system", Buffer.from(text.endsWith("\n") ? text : `${text}\n`));
  }

  /** Mark a log finished: followers receive the end and are detached. */
  close(id: string): void {
    const o = this.owner(id);
    o.closed = true;
    for (const l of o.listeners) l(null);
    o.listeners.clear();
  }

  /** Mark a log that belongs to a finished owner as closed (after a daemon restart). */
  markClosed(id: string): void {
    this.owner(id).closed = true;
  }

  /**
   * Every stored line, then (when `follow` and the log is still open) live
   * lines until {@link close}. `onLine(null)` signals the end. `tail`
   * replays only the last N stored lines.
   * Returns an unsubscribe function.
   */
  subscribe(id: string, follow: boolean, onLine: Listener, tail?: number): () => void {
    const o = this.owner(id);
    const stored = this.readAll(o.file);
    for (const line of tail === undefined ? stored : stored.slice(-tail)) onLine(line);
    if (!follow || o.closed) {
      onLine(null);
      return () => undefined;
    }
    o.listeners.add(onLine);
    return () => o.listeners.delete(onLine);
  }

  /** The last seq stored for `id` (0 when nothing is). */
  lastSeq(id: string): number {
    return this.owner(id).seq;
  }

  /** The seq after which the last `tail` stored lines start; 0 (from the beginning) without `tail`. */
  tailStart(id: string, tail?: number): number {
    if (tail === undefined) return 0;
    const stored = this.readAll(this.owner(id).file);
    return tail >= stored.length ? 0 : stored[stored.length - tail - 1]!.seq;
  }

  /**
   * Stored lines with a seq above `afterSeq`, oldest first, stopping once
   * about `maxBytes` of them are collected: one page for a follower that is
   * catching up from disk. Lines rotated away are gone.
   */
  linesAfter(id: string, afterSeq: number, maxBytes: number): OutputLine[] {
    const o = this.owner(id);
    const out: OutputLine[] = [];
    let bytes = 0;
    for (const file of [this.rotated(o.file), o.file]) {
      if (!existsSync(file)) continue;
      for (const text of readFileSync(file, "utf8").split("\n")) {
        if (text.length === 0) continue;
        // Lines are written by append(), seq second: skip old ones without parsing them.
        const m = /^\{"type":"output","seq":(\d+),/.exec(text);
        if (m && Number(m[1]) <= afterSeq) continue;
        const line = JSON.parse(text) as OutputLine;
        if (line.seq <= afterSeq) continue;
        out.push(line);
        bytes += text.length;
        if (bytes >= maxBytes) return out;
      }
    }
    return out;
  }

  /** Receive live lines (and `null` at the end) unless the log is already closed; returns unsubscribe, or null when closed. */
  listen(id: string, onLine: Listener): (() => void) | null {
    const o = this.owner(id);
    if (o.closed) return null;
    o.listeners.add(onLine);
    return () => o.listeners.delete(onLine);
  }
}

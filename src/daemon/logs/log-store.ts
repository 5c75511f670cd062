/**
 * @module daemon/logs/log-store
 * Output logs of tasks (and later instances): each owner's log is an NDJSON
 * file `AEGIS_HOME/instances/<id>/output.ndjson`, appended synchronously so a
 * daemon crash loses nothing already acknowledged, plus live subscribers for
 * `?follow=true`. Replaying the file and subscribing happen in one
 * synchronous step, so a follower sees every line exactly once.
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
}

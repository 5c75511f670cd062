/**
 * @module cli/progress
 * Image pull progress on stderr: one rewritten line with layer and byte
 * counts when stderr is a terminal, a few plain lines otherwise.
 */
import type { ImagePullEvent, ImageRecord, PullProgress } from "../api/schema/images.ts";
import type { AegisClient } from "../api/client.ts";
import { fromEnvelope } from "../api/errors.ts";
import { say } from "./log.ts";

const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;

/** Renders pull progress events for one reference. */
export class PullRenderer {
  /** Whether stderr is a terminal (one rewritten line) or not (plain lines). */
  readonly tty = process.stderr.isTTY === true;
  private readonly layers = new Map<string, { bytes: number; total: number }>();
  private layerCount = 0;
  private lastDraw = 0;

  constructor(private readonly ref: string) {}

  /** Handle one progress event. */
  update(p: PullProgress): void {
    if (p.phase === "resolve" && p.total !== undefined) this.layerCount = p.total;
    if (p.phase === "layer" && p.layer) {
      const prev = this.layers.get(p.layer);
      const entry = { bytes: p.bytes ?? prev?.bytes ?? 0, total: p.total ?? prev?.total ?? 0 };
      this.layers.set(p.layer, entry);
      if (!this.tty && entry.total > 0 && entry.bytes >= entry.total && prev?.bytes !== entry.bytes) {
        say(`  layer ${p.layer.slice(7, 19)}: ${mb(entry.total)}`);
      }
    }
    if (!this.tty) {
      if (p.phase === "rootfs" && p.bytes === undefined) say("  building rootfs");
      return;
    }
    const now = Date.now();
    if (now - this.lastDraw < 100 && p.phase === "layer") return;
    this.lastDraw = now;
    const done = [...this.layers.values()].filter((l) => l.total > 0 && l.bytes >= l.total).length;
    const bytes = [...this.layers.values()].reduce((a, l) => a + l.bytes, 0);
    const total = [...this.layers.values()].reduce((a, l) => a + l.total, 0);
    const what = p.phase === "rootfs" ? "building rootfs" : p.phase === "unpack" ? "unpacking" : `layers ${done}/${this.layerCount || "?"}`;
    process.stderr.write(`\r\x1b[2KPulling ${this.ref}: ${what}  ${mb(bytes)}${total ? ` / ${mb(total)}` : ""}`);
  }

  /** Finish the display. */
  end(): void {
    if (this.tty) process.stderr.write("\r\x1b[2K");
  }
}

/** Pull `ref` through the daemon with progress on stderr; resolves with the image or throws its error. */
export async function pullWithProgress(api: AegisClient, ref: string): Promise<ImageRecord> {
  const renderer = new PullRenderer(ref);
  if (!renderer.tty) say(`Pulling ${ref}`);
  let last: ImagePullEvent | undefined;
  try {
    for await (const event of api.pullImage(ref)) {
      last = event;
      if (event.type === "progress") renderer.update(event.progress);
      else break;
    }
  } finally {
    renderer.end();
  }
  if (last?.type === "done") return last.image;
  if (last?.type === "error") throw fromEnvelope({ error: last.error });
  throw new Error(`pull of ${ref} ended without a result`);
}

/**
 * @module daemon/images/image-index
 * The image index, `<imagesDir>/index.json`: the pulled images by reference.
 * Read and written synchronously (so one process never interleaves updates)
 * and replaced atomically (temp file + rename). Kept behind this class so the
 * daemon can move it into SQLite later without touching callers.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { AppError } from "../../api/errors.ts";
import { ImageRecord } from "../../api/schema/images.ts";

const IndexFile = z.object({ version: z.literal(1), images: z.array(ImageRecord) });

/** JSON-file storage of {@link ImageRecord}s. */
export class ImageIndex {
  readonly file: string;

  constructor(imagesDir: string) {
    this.file = join(imagesDir, "index.json");
  }

  /** Every record, in file order. */
  all(): ImageRecord[] {
    if (!existsSync(this.file)) return [];
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(this.file, "utf8"));
    } catch (err) {
      throw new AppError("internal", `image index ${this.file} is not valid JSON: ${(err as Error).message}`, "move the file aside and pull the images again");
    }
    const parsed = IndexFile.safeParse(json);
    if (!parsed.success) {
      const i = parsed.error.issues[0];
      throw new AppError("internal", `image index ${this.file} is malformed at ${i?.path.join(".")}: ${i?.message}`, "move the file aside and pull the images again");
    }
    return parsed.data.images;
  }

  /** Replace all records atomically. */
  save(images: ImageRecord[]): void {
    const tmp = `${this.file}.tmp-${process.pid}`;
    writeFileSync(tmp, `${JSON.stringify({ version: 1, images }, null, 2)}\n`, { mode: 0o644 });
    renameSync(tmp, this.file);
  }

  /** Insert or replace the record with the same ref. */
  upsert(rec: ImageRecord): void {
    const rest = this.all().filter((r) => r.ref !== rec.ref);
    this.save([...rest, rec]);
  }
}

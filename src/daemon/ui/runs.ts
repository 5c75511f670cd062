/**
 * @module daemon/ui/runs
 * The UI's two long-running actions, streamed back as NDJSON (the same
 * lines the API sends, read by ui.js with `fetch`): running a command in an
 * instance (`POST /instances/:id/exec`, the API's ExecRequest) and pulling
 * an image with its progress (`POST /images/pull {ref}`; credentials come
 * from the workspace secrets, never from the page). Both are behind the
 * guard's CSRF check like every other action.
 */
import type { Context } from "hono";
import { isAppError } from "../../api/errors.ts";
import { ExecRequest } from "../../api/schema/instances.ts";
import type { ImagePullEvent } from "../../api/schema/images.ts";
import { z } from "zod";
import type { Logger } from "../api/deps.ts";
import { ndjsonResponse } from "../api/ndjson.ts";
import { jsonBody } from "../api/validate.ts";
import { parseReference } from "../images/index.ts";
import type { ImagesService } from "../images/service.ts";
import { execInInstance } from "../instances/exec.ts";
import type { InstancesService } from "../instances/service.ts";

const PullBody = z.object({ ref: z.string().min(1, "must not be empty") }).strict();

/** Run a command in the instance (waking it), streaming output lines and the exit record. */
export async function execRun(c: Context, instances: InstancesService, ref: string): Promise<Response> {
  const id = instances.row(ref).id; // 404 before the stream starts
  const req = await jsonBody(c, ExecRequest);
  return ndjsonResponse((emit) => execInInstance(instances, id, req, emit));
}

/** Pull an image, streaming progress and then `done` or `error`. */
export async function pullRun(c: Context, images: ImagesService, log: Logger): Promise<Response> {
  const { ref } = await jsonBody(c, PullBody);
  parseReference(ref); // a bad reference is a 400 before the stream starts
  return ndjsonResponse(async (emit: (e: ImagePullEvent) => void) => {
    try {
      const image = await images.pull(ref, { credentials: images.credentialsFor(ref), progress: (progress) => emit({ type: "progress", progress }) });
      log.info("image pulled (ui)", { ref: image.ref, digest: image.digest });
      emit({ type: "done", image });
    } catch (err) {
      const e = isAppError(err) ? err : { code: "internal", message: (err as Error).message, hint: undefined };
      log.warn("image pull failed (ui)", { ref, error: e.message });
      emit({ type: "error", error: { code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}) } });
    }
  });
}

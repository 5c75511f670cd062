/**
 * @module cli/commands/_serve
 * Serve mode shared by `aegis run --expose` and `aegis app serve`: create the
 * instance, print where it is served, block until Ctrl+C, then delete it.
 */
import type { InstanceCreate } from "../../api/schema/instances.ts";
import { say } from "../log.ts";
import { pullWithProgress } from "../progress.ts";
import { client } from "./_shared.ts";

/** Create the instance, print the spec's lines, and delete it on SIGINT/SIGTERM. Resolves with the exit code. */
export async function serve(body: InstanceCreate, label?: string): Promise<number> {
  const api = client();
  if (body.image && !(await api.findImage(body.image))) await pullWithProgress(api, body.image);
  const inst = await api.createInstance(body);
  const status = await api.status();
  say(`Serving ${label ? `${label} ` : ""}on ${status.router_url}`);
  say(`Instance: ${inst.id}`);
  say("Press Ctrl+C to stop");
  return new Promise<number>((resolve) => {
    // Signal listeners alone do not keep the event loop alive: hold it open until Ctrl+C.
    const keepAlive = setInterval(() => undefined, 1 << 30);
    let stopping = false;
    const stop = () => {
      if (stopping) return;
      stopping = true;
      clearInterval(keepAlive);
      api.deleteInstance(inst.id).then(
        () => {
          say(`Instance ${inst.id} deleted`);
          resolve(130);
        },
        (err: unknown) => {
          say(`aegis: could not delete ${inst.id}: ${err instanceof Error ? err.message : String(err)}`);
          resolve(1);
        },
      );
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
}

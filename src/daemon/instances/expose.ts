/**
 * @module daemon/instances/expose
 * `POST /v1/instances/{id}/expose` and `DELETE /v1/instances/{id}/expose/{port}`:
 * the host owner adds or removes a router-served guest port of an instance
 * (what the host MCP server's `expose` / `unexpose` tools call). On a running
 * VM the forward changes at once where the backend can; otherwise from the
 * next boot on (see {@link InstancesService.setExpose}).
 *
 * Published ports (`--expose PUBLIC:GUEST`, a raw TCP listener on the host)
 * are fixed at creation: removing one here would leave its listener behind,
 * so unexpose refuses them with a hint.
 */
import { NotFound, PreconditionFailed } from "../../api/errors.ts";
import type { Instance } from "../../api/schema/instances.ts";
import type { InstancesService } from "./service.ts";

/** Serve guest `port` of `ref` through the router (idempotent). Returns the instance. */
export async function exposePort(instances: InstancesService, ref: string, port: number): Promise<Instance> {
  const row = instances.row(ref);
  if (!row.spec.expose.some((e) => e.guest_port === port)) {
    await instances.setExpose(row.id, [...row.spec.expose, { guest_port: port, public_port: null }]);
  }
  return instances.get(row.id);
}

/** Stop serving guest `port` of `ref`. NotFound when it is not exposed. Returns the instance. */
export async function unexposePort(instances: InstancesService, ref: string, port: number): Promise<Instance> {
  const row = instances.row(ref);
  const entries = row.spec.expose.filter((e) => e.guest_port === port);
  if (entries.length === 0) {
    const current = row.spec.expose.map((e) => e.guest_port).join(", ") || "none";
    throw new NotFound(`port ${port} of instance "${row.handle}" is not exposed (exposed: ${current})`, `'aegis instance info ${row.handle}' lists the exposed ports`);
  }
  if (entries.some((e) => e.public_port !== null)) {
    throw new PreconditionFailed(
      `port ${port} of instance "${row.handle}" is published on the host (--expose ${entries[0]!.public_port}:${port}); published ports are fixed when the instance is created`,
      `delete the instance and start it again without that --expose to unpublish it`,
    );
  }
  await instances.setExpose(row.id, row.spec.expose.filter((e) => e.guest_port !== port));
  return instances.get(row.id);
}

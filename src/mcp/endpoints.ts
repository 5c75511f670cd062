/**
 * @module mcp/endpoints
 * Where an instance's exposed ports can be reached from the host, as the
 * tools report them: the router serves the first exposed port without a
 * public port at `ROUTER/HANDLE/` (and `http://HANDLE.localhost:PORT/`);
 * a published port (`PUBLIC:GUEST`) is a TCP listener on 127.0.0.1:PUBLIC;
 * any other exposed port is forwarded while the VM runs but has no router URL.
 */
import type { Instance } from "../api/schema/instances.ts";

/** One exposed port and its URLs. */
export interface Endpoint {
  guest_port: number;
  public_port: number | null;
  /** The URL to use, or null when the router does not serve this port. */
  url: string | null;
  /** The same HTTP service by Host header (`NAME.localhost`), when served. */
  host_url: string | null;
}

/** The endpoints of `inst` given the daemon's router origin (`http://127.0.0.1:8099`). */
export function endpoints(inst: Instance, routerUrl: string): Endpoint[] {
  const served = inst.expose.find((e) => e.public_port === null);
  const origin = routerUrl.replace(/\/+$/, "");
  return inst.expose.map((e) => {
    if (e.public_port !== null) return { guest_port: e.guest_port, public_port: e.public_port, url: `tcp://127.0.0.1:${e.public_port}`, host_url: null };
    if (e !== served) return { guest_port: e.guest_port, public_port: null, url: null, host_url: null };
    return {
      guest_port: e.guest_port,
      public_port: null,
      url: `${origin}/${inst.handle}/`,
      host_url: `${origin.replace("://127.0.0.1", `://${inst.handle}.localhost`).replace("://localhost", `://${inst.handle}.localhost`)}/`,
    };
  });
}

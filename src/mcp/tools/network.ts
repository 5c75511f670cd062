/**
 * @module mcp/tools/network
 * `expose` / `unexpose`: serve a guest port of an instance through the
 * Aegis router (which wakes the instance on a connection) and report the URL.
 * The router serves one HTTP port per instance, the first exposed one
 * without a public port; other exposed ports are forwarded while the VM runs
 * but get no router URL (the result says so).
 */
import { z } from "zod";
import { endpoints } from "../endpoints.ts";
import { ok } from "../result.ts";
import { defineTool } from "../tool.ts";
import { GuestPort, InstanceRef } from "./_fields.ts";
import { routerUrl } from "./_view.ts";

const expose = defineTool({
  name: "expose",
  title: "Expose a port of an instance",
  description:
    "Make a TCP port of an instance reachable from the host through the Aegis router and return its URL (http://127.0.0.1:ROUTER/NAME/, also http://NAME.localhost:ROUTER/). A connection wakes a paused or stopped instance. The server inside must listen on 0.0.0.0, not 127.0.0.1. The router serves one HTTP port per instance (the first exposed); for another port url is null. Idempotent.",
  input: z.object({ instance: InstanceRef, port: GuestPort }).strict(),
  async run({ instance, port }, { link }) {
    return link.call(async (c) => {
      const inst = await c.exposePort(instance, port);
      const all = endpoints(inst, await routerUrl(c));
      const mine = all.find((e) => e.guest_port === port)!;
      const note = mine.url === null ? `the router serves port ${all.find((e) => e.url !== null)?.guest_port} of this instance; port ${port} is forwarded while the VM runs but has no router URL` : undefined;
      return ok({ instance: inst.handle, ...mine, ...(note ? { note } : {}), exposed: all });
    });
  },
});

const unexpose = defineTool({
  name: "unexpose",
  title: "Stop exposing a port",
  description: "Stop serving a guest port of an instance through the router (ports published with PUBLIC:GUEST at creation cannot be removed). Returns the ports still exposed.",
  input: z.object({ instance: InstanceRef, port: GuestPort }).strict(),
  async run({ instance, port }, { link }) {
    return link.call(async (c) => {
      const inst = await c.unexposePort(instance, port);
      return ok({ instance: inst.handle, removed: port, exposed: endpoints(inst, await routerUrl(c)) });
    });
  },
});

/** The network tools. */
export const networkTools = [expose, unexpose];

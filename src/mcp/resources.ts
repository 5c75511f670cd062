/**
 * @module mcp/resources
 * Instance logs and tether sessions as MCP resources, so a client can show
 * and follow them:
 *
 * - `aegis://instances/{name}/logs` (text/plain): the last
 *   {@link RESOURCE_LOG_LINES} lines of the instance's output;
 * - `aegis://instances/{name}/tether` (application/json): the instance's
 *   recent guest -> host tether frames.
 *
 * `resources/subscribe` on either starts a background follower of the
 * daemon's stream for that URI, which sends `notifications/resources/updated`
 * when new lines or frames arrive (at most one per {@link NOTIFY_EVERY_MS}:
 * the client re-reads the resource anyway); `resources/unsubscribe` and the
 * end of the session stop it. A follower whose stream ends (the daemon
 * restarted, the VM was replaced) reconnects; one whose instance is gone
 * sends a last update and stops.
 */
import { type McpServer, ResourceTemplate } from "@modelcontextprotocol/sdk/server/mcp.js";
import { SubscribeRequestSchema, UnsubscribeRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { isAppError } from "../api/errors.ts";
import type { DaemonLink } from "./daemon-link.ts";
import { tailLogs } from "./tools/processes.ts";

/** Lines the logs resource returns. */
export const RESOURCE_LOG_LINES = 500;
/** Smallest gap between two update notifications of one URI. */
export const NOTIFY_EVERY_MS = 250;
/** Pause before a follower reconnects. */
const RECONNECT_MS = 1000;

const URI = /^aegis:\/\/instances\/([^/]+)\/(logs|tether)$/;

/** The instance and kind a resource URI names, or null. */
export function parseResourceUri(uri: string): { instance: string; kind: "logs" | "tether" } | null {
  const m = URI.exec(uri);
  return m ? { instance: decodeURIComponent(m[1]!), kind: m[2] as "logs" | "tether" } : null;
}

function uriOf(instance: string, kind: "logs" | "tether"): string {
  return `aegis://instances/${encodeURIComponent(instance)}/${kind}`;
}

/** Register the resource templates and the subscription handlers. Returns a function that stops every follower. */
export function registerResources(server: McpServer, link: DaemonLink): () => void {
  const list = (kind: "logs" | "tether") => async () => {
    const { instances } = await link.call((c) => c.listInstances());
    return {
      resources: instances.map((i) => ({
        uri: uriOf(i.handle, kind),
        name: `${i.handle} ${kind}`,
        mimeType: kind === "logs" ? "text/plain" : "application/json",
      })),
    };
  };
  server.registerResource(
    "instance-logs",
    new ResourceTemplate("aegis://instances/{name}/logs", { list: list("logs") }),
    { title: "Instance logs", description: `The last ${RESOURCE_LOG_LINES} lines of an instance's output (Aegis's own notes marked [aegis]). Subscribe to follow it.`, mimeType: "text/plain" },
    async (uri, vars) => {
      const { text } = await link.call((c) => tailLogs(c, String(vars.name), RESOURCE_LOG_LINES));
      return { contents: [{ uri: uri.href, mimeType: "text/plain", text }] };
    },
  );
  server.registerResource(
    "instance-tether",
    new ResourceTemplate("aegis://instances/{name}/tether", { list: list("tether") }),
    { title: "Instance tether", description: "The recent frames an Agent Kit instance sent over its tether (replies, deltas, presence, acks), oldest first. Subscribe to follow it.", mimeType: "application/json" },
    async (uri, vars) => {
      const frames = await link.call(async (c) => {
        const out: unknown[] = [];
        for await (const f of c.tetherFrames(String(vars.name), undefined, false)) out.push(f);
        return out;
      });
      return { contents: [{ uri: uri.href, mimeType: "application/json", text: JSON.stringify({ frames }, null, 2) }] };
    },
  );

  const followers = new Map<string, AbortController>();
  server.server.setRequestHandler(SubscribeRequestSchema, async (req) => {
    const uri = req.params.uri;
    const target = parseResourceUri(uri);
    if (!target) throw new Error(`cannot subscribe to ${uri}: Aegis resources are aegis://instances/NAME/logs and aegis://instances/NAME/tether`);
    await link.call((c) => c.getInstance(target.instance)); // not_found before anything starts
    if (!followers.has(uri)) {
      const abort = new AbortController();
      followers.set(uri, abort);
      void follow(server, link, uri, target, abort.signal).finally(() => {
        if (followers.get(uri) === abort) followers.delete(uri);
      });
    }
    return {};
  });
  server.server.setRequestHandler(UnsubscribeRequestSchema, async (req) => {
    followers.get(req.params.uri)?.abort();
    followers.delete(req.params.uri);
    return {};
  });
  return () => {
    for (const abort of followers.values()) abort.abort();
    followers.clear();
  };
}

/** Follow one resource's stream until `signal` aborts, notifying the client of changes. */
async function follow(server: McpServer, link: DaemonLink, uri: string, target: { instance: string; kind: "logs" | "tether" }, signal: AbortSignal): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let dirty = false;
  const send = () => {
    server.server.sendResourceUpdated({ uri }).catch((err: unknown) => link.note(`notifying ${uri}: ${(err as Error).message}`));
  };
  const changed = () => {
    if (timer) {
      dirty = true;
      return;
    }
    send();
    timer = setTimeout(function again() {
      timer = undefined;
      if (dirty && !signal.aborted) {
        dirty = false;
        send();
        timer = setTimeout(again, NOTIFY_EVERY_MS);
      }
    }, NOTIFY_EVERY_MS);
  };
  let afterSeq: number | undefined;
  while (!signal.aborted) {
    try {
      await link.call(async (c) => {
        if (target.kind === "logs") {
          // tail=0: only lines written from now on.
          for await (const line of c.instanceLogs(target.instance, true, 0, signal)) if (line.type === "output") changed();
          return;
        }
        if (afterSeq === undefined) {
          afterSeq = 0;
          for await (const f of c.tetherFrames(target.instance, undefined, false, signal)) afterSeq = f.seq;
        }
        for await (const f of c.tetherFrames(target.instance, afterSeq, true, signal)) {
          afterSeq = f.seq;
          changed();
        }
      });
    } catch (err) {
      if (signal.aborted) break;
      if (isAppError(err) && err.code === "not_found") {
        link.note(`${uri}: ${err.message}; no longer following it`);
        send();
        break;
      }
      link.note(`${uri}: ${(err as Error).message}; reconnecting`);
    }
    if (!signal.aborted) await Bun.sleep(RECONNECT_MS);
  }
  clearTimeout(timer);
}

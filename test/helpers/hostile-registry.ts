/**
 * A hostile registry stand-in: a Bun.serve on 127.0.0.1 that speaks just
 * enough of the distribution v2 API (`/v2/<repo>/manifests/<ref>`,
 * `/v2/<repo>/blobs/<digest>`) to send what a real registry never would —
 * endless chunked bodies, huge error pages, documents that declare giant
 * sizes. It counts the bytes it managed to send, so a test can show the
 * client stopped reading. Use with `await using`.
 */

/** What the stand-in answers for one path. */
export type HostileRoute =
  /** A JSON document (manifest, config) with the given content type. */
  | { kind: "doc"; body: Uint8Array; contentType: string; status?: number }
  /** `total` bytes of filler in 1 MiB chunks, chunked (no Content-Length). */
  | { kind: "flood"; total: number; status?: number; contentType?: string };

/** A running hostile registry. */
export interface HostileRegistry extends AsyncDisposable {
  /** `127.0.0.1:PORT` for image references. */
  host: string;
  /** Bytes of body handed to the socket so far, per path. */
  sent: Map<string, number>;
  /** Every path requested, in order. */
  requests: string[];
}

const CHUNK = new Uint8Array(1024 * 1024).fill(0x20);

/** Start a stand-in answering `routes` (keyed by path, e.g. `/v2/evil/manifests/v1`); anything else is a 404. */
export function startHostileRegistry(routes: Record<string, HostileRoute>): HostileRegistry {
  const sent = new Map<string, number>();
  const requests: string[] = [];
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      const path = new URL(req.url).pathname;
      requests.push(path);
      if (path === "/v2/") return new Response("{}", { headers: { "content-type": "application/json" } });
      const route = routes[path];
      if (!route) return Response.json({ errors: [{ code: "NAME_UNKNOWN" }] }, { status: 404 });
      if (route.kind === "doc") return new Response(route.body, { status: route.status ?? 200, headers: { "content-type": route.contentType } });
      sent.set(path, 0);
      let left = route.total;
      const body = new ReadableStream<Uint8Array>({
        pull(ctrl) {
          if (left <= 0) return ctrl.close();
          const n = Math.min(left, CHUNK.byteLength);
          left -= n;
          sent.set(path, (sent.get(path) ?? 0) + n);
          ctrl.enqueue(CHUNK.subarray(0, n));
        },
      });
      return new Response(body, { status: route.status ?? 200, headers: { "content-type": route.contentType ?? "application/vnd.oci.image.manifest.v1+json" } });
    },
  });
  return {
    host: `127.0.0.1:${server.port}`,
    sent,
    requests,
    async [Symbol.asyncDispose]() {
      await server.stop(true);
    },
  };
}

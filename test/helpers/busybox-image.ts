/**
 * A tiny image for the containerd tests: /bin/busybox (the host's static one)
 * with the given applets linked to it, a root /etc/passwd, PATH=/bin, written
 * as a `docker save` archive that `ctr images import` takes.
 */
import { makeImage, makeLayer, type TestEntry } from "./oci-build.ts";
import { writeDockerArchive } from "./oci-layout.ts";

export async function busyboxArchive(file: string, work: string, ref: string, applets: string[], opts: { cmd?: string[]; extra?: TestEntry[] } = {}): Promise<void> {
  const bb = new Uint8Array(await Bun.file("/bin/busybox").arrayBuffer());
  const layer = makeLayer([
    { path: "bin/", type: "Directory" },
    { path: "bin/busybox", content: bb, mode: 0o755 },
    ...applets.map((a) => ({ path: `bin/${a}`, type: "SymbolicLink" as const, linkpath: "busybox", mode: 0o777 })),
    { path: "etc/", type: "Directory" },
    { path: "etc/passwd", content: "root:x:0:0:root:/root:/bin/sh\n" },
    ...(opts.extra ?? []),
  ]);
  await writeDockerArchive(file, work, makeImage([layer], { env: ["PATH=/bin"], ...(opts.cmd ? { cmd: opts.cmd } : {}) }), ref);
}

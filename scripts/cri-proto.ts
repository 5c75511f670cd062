/**
 * @module scripts/cri-proto
 * Generation of the protobuf descriptor of the Kubernetes CRI API
 * (`runtime.v1`, the `api.proto` of kubernetes/cri-api, Apache-2.0) that the
 * CRI e2e test's client speaks (test/helpers/cri/client.ts).
 *
 * Unlike containerd's .proto files (scripts/shim-proto.ts), Debian 12 ships
 * no package with the CRI api.proto, so the descriptor is generated once from
 * a checkout of kubernetes/cri-api at the tag containerd 1.6 builds against
 * (v0.25.x) and committed: `bun scripts/cri-proto.ts PATH/TO/api.proto`.
 * Its gogoproto import comes from Debian's golang-github-gogo-protobuf-dev
 * (a dependency of golang-github-containerd-containerd-dev, `make deps`);
 * gogo options only shape Go code and are dropped from the descriptor.
 */
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import protobuf from "protobufjs";

/** Import roots, searched in order (as `protoc -I` would). */
const INCLUDE = ["/usr/share/gocode/src", "/usr/share/gocode/src/github.com/gogo/protobuf/protobuf", "/usr/include"];

/** Where the generated descriptor goes. */
export const CRI_DESCRIPTOR_PATH = join(import.meta.dir, "..", "test", "helpers", "cri", "cri-api.gen.json");

/** Parse `apiProto` into a JSON descriptor. */
export function generateCriDescriptor(apiProto: string): string {
  if (!existsSync(apiProto)) throw new Error(`${apiProto} does not exist\nhint: pass the path of pkg/apis/runtime/v1/api.proto of a kubernetes/cri-api checkout`);
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => (target === apiProto ? target : (INCLUDE.map((d) => join(d, target)).find((p) => existsSync(p)) ?? target));
  root.loadSync(apiProto, { keepCase: true });
  const json = root.toJSON({ keepComments: false }) as { nested?: Record<string, unknown> };
  // Keep only runtime.v1 (gogoproto and google.protobuf descriptor types are Go-only).
  const runtime = (json.nested?.runtime as { nested?: Record<string, unknown> } | undefined)?.nested?.v1 as { options?: unknown } | undefined;
  if (!runtime) throw new Error(`${apiProto} does not define package runtime.v1`);
  delete runtime.options;
  return `${JSON.stringify({ nested: { runtime: { nested: { v1: runtime } } } }, (k, v) => (k === "options" ? undefined : v))}\n`;
}

if (import.meta.main) {
  const src = process.argv[2];
  if (!src) {
    process.stderr.write("usage: bun scripts/cri-proto.ts PATH/TO/cri-api/pkg/apis/runtime/v1/api.proto\n");
    process.exit(2);
  }
  writeFileSync(CRI_DESCRIPTOR_PATH, generateCriDescriptor(src));
  process.stderr.write(`wrote ${CRI_DESCRIPTOR_PATH}\n`);
}

/**
 * @module shim/proto
 * The protobuf messages the shim speaks, as protobufjs reflection types:
 * containerd's (from the descriptor generated out of Debian's .proto files,
 * see scripts/shim-proto.ts) and ttrpc's own envelope (`Request`, `Response`,
 * `KeyValue`), which ttrpc defines in Go (containerd/ttrpc types.go) rather
 * than in a .proto file, so it is declared here field by field.
 *
 * Messages are plain objects with the .proto field names (snake_case);
 * 64-bit integers decode to numbers (pids, exit codes and nanosecond
 * timeouts all fit in 2^53).
 */
import protobuf from "protobufjs";
import descriptor from "./containerd.gen.json" with { type: "json" };

/** The containerd root (task v2, events, google.rpc.Status, well-known types). */
export const root = protobuf.Root.fromJSON(descriptor as protobuf.INamespace);

const ttrpc = new protobuf.Namespace("ttrpc");
root.add(ttrpc);
ttrpc.add(new protobuf.Type("KeyValue").add(new protobuf.Field("key", 1, "string")).add(new protobuf.Field("value", 2, "string")));
ttrpc.add(
  new protobuf.Type("Request")
    .add(new protobuf.Field("service", 1, "string"))
    .add(new protobuf.Field("method", 2, "string"))
    .add(new protobuf.Field("payload", 3, "bytes"))
    .add(new protobuf.Field("timeout_nano", 4, "int64"))
    .add(new protobuf.Field("metadata", 5, "KeyValue", "repeated")),
);
ttrpc.add(new protobuf.Type("Response").add(new protobuf.Field("status", 1, "google.rpc.Status")).add(new protobuf.Field("payload", 2, "bytes")));
root.resolveAll();

/** A decoded message: field name -> value. */
export type Msg = Record<string, unknown>;

const conversion: protobuf.IConversionOptions = { longs: Number, bytes: Buffer, defaults: true, arrays: true, enums: Number };

/** The reflection type of a fully qualified message name (throws for an unknown one). */
export function messageType(name: string): protobuf.Type {
  return root.lookupType(name);
}

/** Encode `value` as message `name` (unknown fields are dropped by fromObject). */
export function encode(name: string, value: Msg): Uint8Array {
  const t = messageType(name);
  return t.encode(t.fromObject(value)).finish();
}

/** Decode `bytes` as message `name`, with defaults filled in. */
export function decode(name: string, bytes: Uint8Array): Msg {
  const t = messageType(name);
  return t.toObject(t.decode(bytes), conversion);
}

/** A google.protobuf.Timestamp for `ms` since the epoch. */
export function timestamp(ms: number): Msg {
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 };
}

/** A google.protobuf.Any holding message `name` (the type URL containerd's typeurl registry expects). */
export function any(name: string, value: Msg): Msg {
  return { type_url: name, value: encode(name, value) };
}

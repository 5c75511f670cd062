/**
 * @module test/helpers/cri/client
 * A small CRI client (Kubernetes `runtime.v1.RuntimeService` over gRPC) for
 * the e2e tests: @grpc/grpc-js carries the calls on containerd's unix
 * socket, protobufjs encodes them with the descriptor generated from the
 * CRI api.proto (scripts/cri-proto.ts). Messages are plain objects with the
 * .proto's snake_case field names; 64-bit integers come back as numbers, enums as
 * their names.
 */
import * as grpc from "@grpc/grpc-js";
import protobuf from "protobufjs";
import descriptor from "./cri-api.gen.json";

const root = protobuf.Root.fromJSON(descriptor as protobuf.INamespace);
const service = root.lookupService("runtime.v1.RuntimeService");

/** A CRI message as a plain object. */
export type CriMsg = Record<string, unknown>;

/** A CRI runtime client on one containerd socket. */
export class CriClient {
  private readonly client: grpc.Client;

  constructor(socket: string) {
    this.client = new grpc.Client(`unix://${socket}`, grpc.credentials.createInsecure());
  }

  /** Call RuntimeService method `name` with `req`; `timeoutMs` bounds it (gRPC deadline). */
  call(name: string, req: CriMsg, timeoutMs = 60_000): Promise<CriMsg> {
    const method = service.methods[name];
    if (!method) throw new Error(`runtime.v1.RuntimeService has no method ${name}`);
    const reqType = root.lookupType(`runtime.v1.${method.requestType}`);
    const resType = root.lookupType(`runtime.v1.${method.responseType}`);
    const err = reqType.verify(req);
    if (err) throw new Error(`${name} request: ${err}`);
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(
        `/runtime.v1.RuntimeService/${name}`,
        (m: CriMsg) => Buffer.from(reqType.encode(reqType.fromObject(m)).finish()),
        (b: Buffer) => resType.toObject(resType.decode(b), { longs: Number, enums: String, defaults: true, bytes: Buffer }) as CriMsg,
        req,
        new grpc.Metadata(),
        { deadline: Date.now() + timeoutMs },
        (e, res) => (e ? reject(new Error(`CRI ${name}: ${e.message}`)) : resolve(res!)),
      );
    });
  }

  /** Close the channel. */
  close(): void {
    this.client.close();
  }
}

import { afterEach, describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decode, encode, messageType } from "../../../src/shim/proto/index.ts";
import { Code, encodeFrame, FrameDecoder, MAX_MESSAGE, serve, TtrpcClient, TtrpcError, type Method, type Services } from "../../../src/shim/ttrpc.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function socket(): string {
  const d = mkdtempSync(join(tmpdir(), "ttrpc-"));
  dirs.push(d);
  return join(d, "s");
}

const T = "containerd.task.v2.";
function service(methods: Record<string, Method>): Services {
  return new Map([["containerd.task.v2.Task", new Map(Object.entries(methods))]]);
}

describe("ttrpc framing", () => {
  it("writes the 10-byte header: length, stream id (big-endian), type, flags", () => {
    const f = encodeFrame({ streamId: 3, type: 1, flags: 0, payload: new Uint8Array([7, 8]) });
    expect([...f]).toEqual([0, 0, 0, 2, 0, 0, 0, 3, 1, 0, 7, 8]);
  });

  it("reassembles frames split across and packed into chunks", () => {
    const a = encodeFrame({ streamId: 1, type: 1, flags: 0, payload: new Uint8Array([1, 2, 3]) });
    const b = encodeFrame({ streamId: 3, type: 2, flags: 0, payload: new Uint8Array([]) });
    const joined = new Uint8Array([...a, ...b]);
    const d = new FrameDecoder();
    expect(d.push(joined.slice(0, 5))).toEqual([]);
    const frames = d.push(joined.slice(5));
    expect(frames.map((f) => [f.streamId, f.type, [...f.payload]])).toEqual([[1, 1, [1, 2, 3]], [3, 2, []]]);
  });

  it("refuses a frame announcing more than 4 MiB", () => {
    const header = new Uint8Array(10);
    new DataView(header.buffer).setUint32(0, MAX_MESSAGE + 1);
    expect(() => new FrameDecoder().push(header)).toThrow(/over the 4194304-byte limit/);
  });
});

describe("generated containerd descriptor", () => {
  it("round-trips a CreateTaskRequest with its rootfs mounts", () => {
    const req = { id: "t1", bundle: "/b", rootfs: [{ type: "overlay", source: "overlay", target: "", options: ["lowerdir=/l"] }], terminal: true, stdin: "/i", stdout: "/o", stderr: "" };
    expect(decode(`${T}CreateTaskRequest`, encode(`${T}CreateTaskRequest`, req))).toMatchObject(req);
  });

  it("has every task v2 method containerd calls", () => {
    const svc = messageType(`${T}StateRequest`).parent!.lookup("Task") as unknown as { methods: Record<string, unknown> };
    expect(Object.keys(svc.methods).sort()).toEqual(["Checkpoint", "CloseIO", "Connect", "Create", "Delete", "Exec", "Kill", "Pause", "Pids", "ResizePty", "Resume", "Shutdown", "Start", "State", "Stats", "Update", "Wait"]);
  });
});

describe("ttrpc server and client", () => {
  it("serves requests concurrently: a blocked Wait does not hold back State", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const path = socket();
    const server = serve(
      path,
      service({
        Wait: { request: `${T}WaitRequest`, response: `${T}WaitResponse`, handle: async () => (await gate, { exit_status: 7 }) },
        State: { request: `${T}StateRequest`, response: `${T}StateResponse`, handle: async (r) => ({ id: r.id, status: 2 }) },
      }),
      (err) => {
        throw err;
      },
    );
    const c = await TtrpcClient.connect(`unix://${path}`);
    const wait = c.call("containerd.task.v2.Task", "Wait", `${T}WaitRequest`, { id: "t" }, `${T}WaitResponse`);
    const state = await c.call("containerd.task.v2.Task", "State", `${T}StateRequest`, { id: "t" }, `${T}StateResponse`);
    expect(state).toMatchObject({ id: "t", status: 2 });
    release();
    expect(await wait).toMatchObject({ exit_status: 7 });
    c.close();
    server.stop();
  });

  it("answers an unknown method Unimplemented and a handler's TtrpcError with its code", async () => {
    const path = socket();
    const server = serve(
      path,
      service({
        Kill: {
          request: `${T}KillRequest`,
          response: "google.protobuf.Empty",
          handle: async () => {
            throw new TtrpcError(Code.notFound, "process p not found");
          },
        },
      }),
      () => {},
    );
    const c = await TtrpcClient.connect(path);
    const kill = c.call("containerd.task.v2.Task", "Kill", `${T}KillRequest`, { id: "t", signal: 9 }, "google.protobuf.Empty");
    await expect(kill).rejects.toMatchObject({ code: Code.notFound, message: "process p not found" });
    const stats = c.call("containerd.task.v2.Task", "Stats", `${T}StatsRequest`, { id: "t" }, `${T}StatsResponse`);
    await expect(stats).rejects.toMatchObject({ code: Code.unimplemented });
    c.close();
    server.stop();
  });
});

/**
 * SocketBridge: the guest side of the MCP bridge, against a fake host on a
 * unix socket.
 */
import { describe, expect, it } from "bun:test";
import { McpBridgeErrorCode } from "../../../../src/api/schema/mcp.ts";
import { BridgeRefusal, SocketBridge } from "../../../../guest/mcp/bridge.ts";
import { DROP, FakeHost, HostRefusal } from "./fake-host.ts";

describe("SocketBridge", () => {
  it("sends a JSON-RPC request and resolves with the host's result", async () => {
    await using host = new FakeHost({ "mcp.self_info": () => ({ id: "i-1" }) });
    const bridge = new SocketBridge(host.path);
    try {
      expect(await bridge.request("mcp.self_info", {})).toEqual({ id: "i-1" });
      expect(host.received).toEqual([{ id: 1, method: "mcp.self_info", params: {} }]);
    } finally {
      bridge.close();
    }
  });

  it("shares one connection and matches answers that arrive out of order", async () => {
    let releaseSlow!: () => void;
    const slowGate = new Promise<void>((r) => (releaseSlow = r));
    await using host = new FakeHost({
      slow: async () => {
        await slowGate;
        return "slow";
      },
      fast: () => "fast",
    });
    const bridge = new SocketBridge(host.path);
    try {
      const slow = bridge.request("slow", {});
      const fast = await bridge.request("fast", {});
      expect(fast).toBe("fast");
      releaseSlow();
      expect(await slow).toBe("slow");
      expect(host.connections).toBe(1);
    } finally {
      bridge.close();
    }
  });

  it("turns a JSON-RPC error into a BridgeRefusal carrying the message, code and hint", async () => {
    await using host = new FakeHost({
      "mcp.instance_spawn": () => {
        throw new HostRefusal(McpBridgeErrorCode.denied, 'image "ubuntu" is not in allowed_images (busybox)', { code: "invalid_request", hint: "self_info lists the allowed images" });
      },
    });
    const bridge = new SocketBridge(host.path);
    try {
      const err = await bridge.request("mcp.instance_spawn", { image: "ubuntu" }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BridgeRefusal);
      const refusal = err as BridgeRefusal;
      expect(refusal.code).toBe(McpBridgeErrorCode.denied);
      expect(refusal.message).toBe('image "ubuntu" is not in allowed_images (busybox)');
      expect(refusal.errorCode).toBe("invalid_request");
      expect(refusal.hint).toBe("self_info lists the allowed images");
    } finally {
      bridge.close();
    }
  });

  it("reports a missing bridge socket with its path and a hint", async () => {
    const bridge = new SocketBridge("/nonexistent/aegis-mcp.sock");
    const err = await bridge.request("mcp.self_info", {}).catch((e: unknown) => e as Error);
    expect(err).not.toBeInstanceOf(BridgeRefusal);
    expect((err as Error).message).toContain("the Aegis host bridge at /nonexistent/aegis-mcp.sock is not available (ENOENT)");
    expect((err as Error).message).toContain("hint:");
    bridge.close();
  });

  it("fails the request in flight when the host drops the connection, then reconnects", async () => {
    await using host = new FakeHost({ drop: () => DROP, ok: () => ({ ok: true }) });
    const bridge = new SocketBridge(host.path);
    try {
      const err = await bridge.request("drop", {}).catch((e: unknown) => e as Error);
      expect((err as Error).message).toContain("closed the connection before answering");
      expect(await bridge.request("ok", {})).toEqual({ ok: true });
      expect(host.connections).toBe(2);
    } finally {
      bridge.close();
    }
  });

  it("fails requests in flight on close and refuses new ones", async () => {
    await using host = new FakeHost({ never: () => new Promise(() => {}) });
    const bridge = new SocketBridge(host.path);
    const pending = bridge.request("never", {}).catch((e: unknown) => e as Error);
    while (host.received.length === 0) await Bun.sleep(5);
    bridge.close();
    expect((await pending as Error).message).toContain("was closed");
    await expect(bridge.request("never", {})).rejects.toThrow("is closed");
  });
});

import { describe, expect, it } from "bun:test";
import { RpcErrorCode } from "../../../src/api/schema/control.ts";
import type { ControlChannel } from "../../../src/vmm/control-channel.ts";
import { GuestPortTimeoutError, isGuestPortTimeout, isSnapshotStale, isSnapshotUnsupported, SnapshotStaleError, SnapshotUnsupportedError } from "../../../src/vmm/errors.ts";
import { waitGuestPort } from "../../../src/vmm/guest-port.ts";
import { RpcError } from "../../../src/api/jsonrpc.ts";
import { sandboxedVirtiofsdArgv, virtiofsdArgv, workspaceOwner } from "../../../src/vmm/virtiofsd.ts";

describe("VM layer errors", () => {
  it("carry stable codes, hints and name-based guards", () => {
    const u = new SnapshotUnsupportedError("i1", "a workspace is attached", "stop it instead");
    expect(u.code).toBe("snapshot_unsupported");
    expect(u.message).toBe("cannot snapshot VM i1: a workspace is attached\nhint: stop it instead");
    expect(isSnapshotUnsupported(u)).toBe(true);
    expect(isSnapshotUnsupported({ name: "SnapshotUnsupportedError" })).toBe(true);
    const s = new SnapshotStaleError("/s/a.zst", "overlay changed");
    expect(s.code).toBe("snapshot_stale");
    expect(s.message).toContain("hint:");
    expect(isSnapshotStale(s)).toBe(true);
    expect(isSnapshotStale(u)).toBe(false);
    expect(isGuestPortTimeout(new GuestPortTimeoutError("i1", 80, 100))).toBe(true);
  });
});

describe("waitGuestPort", () => {
  const fake = (impl: (method: string, params: unknown, opts: { timeoutMs?: number }) => Promise<unknown>) =>
    ({ call: impl }) as unknown as ControlChannel;

  it("asks the guest with a longer host-side timeout and maps the result", async () => {
    let seen: unknown;
    const ch = fake(async (method, params, opts) => {
      seen = { method, params, opts };
      return { ok: true, loopback_only: false };
    });
    expect(await waitGuestPort(ch, "i1", 8080, 3000)).toEqual({ loopbackOnly: false });
    expect(seen).toEqual({ method: "port.wait", params: { port: 8080, timeout_ms: 3000 }, opts: { timeoutMs: 8000 } });
  });

  it("turns the guest's timeout error into GuestPortTimeoutError and passes other errors through", async () => {
    const timeout = fake(async () => {
      throw new RpcError(RpcErrorCode.timeout, "port.wait: nothing listens");
    });
    const err = await waitGuestPort(timeout, "i1", 80, 100).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GuestPortTimeoutError);
    expect(String(err)).toContain("binds 0.0.0.0:80");
    const gone = fake(async () => {
      throw new Error("VM gone");
    });
    await expect(waitGuestPort(gone, "i1", 80, 100)).rejects.toThrow("VM gone");
  });
});

describe("virtiofsd", () => {
  it("shares one directory on one socket with cache=auto and two threads, leaving its fd limit alone", () => {
    expect(virtiofsdArgv("/usr/lib/qemu/virtiofsd", "/w", "/r/vfs.sock")).toEqual([
      "/usr/lib/qemu/virtiofsd", "--socket-path=/r/vfs.sock", "-o", "source=/w", "-o", "cache=auto", "--thread-pool-size=2", "--rlimit-nofile=0",
    ]);
  });

  it("runs as the workspace owner in a user namespace, seeing only the staged paths", () => {
    const argv = sandboxedVirtiofsdArgv("/v", "/home/a/ws", "/s/i1/vfs/vfs.sock", { uid: 1000, gid: 100 }, "/s/i1/vfs-stage");
    const at = argv.indexOf("/v");
    expect(argv.slice(0, 4)).toEqual([argv[0]!, "--mount", "--propagation", "private"]);
    expect(argv.slice(at - 8, at)).toEqual(["--reuid=1000", "--regid=100", "--clear-groups", "--", argv[at - 4]!, "--user", "--map-root-user", "--"]);
    expect(argv[at - 9]).toEndWith("setpriv");
    expect(argv[at - 4]).toEndWith("unshare");
    expect(argv).toContain("1000:100");
    expect(argv.slice(at)).toEqual(virtiofsdArgv("/v", "/tmp/ws", "/tmp/sock/vfs.sock"));
    // The host paths reach the wrapper as arguments, never inside the script.
    expect(argv.find((a) => a.includes("set -eu"))).not.toContain("/home/a/ws");
    expect(argv).toContain("/home/a/ws");
  });

  it("squashes root to nobody and keeps any other owner", () => {
    expect(workspaceOwner({ uid: 0, gid: 0 })).toEqual({ uid: 65534, gid: 65534 });
    expect(workspaceOwner({ uid: 12345, gid: 0 })).toEqual({ uid: 12345, gid: 0 });
  });
});

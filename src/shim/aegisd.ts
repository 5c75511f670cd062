/**
 * @module shim/aegisd
 * The shim's side of aegisd: the shim is a thin front, and every VM belongs
 * to the one aegisd of the host (its AEGIS_HOME comes from the shim's
 * environment, i.e. containerd's). Like the CLI, the shim starts aegisd
 * when none runs. A task is one aegisd instance booted from the bundle's
 * rootfs directory (`rootfs_dir`), with no main process and no idle policy
 * (containerd decides its lifetime); each container process, init and
 * execs alike, is an exec session (WebSocket, api/schema/session.ts), which
 * carries stdin, a terminal and its size, signals and the exit code.
 */
import { z } from "zod";
import { AegisClient } from "../api/client.ts";
import { Instance } from "../api/schema/instances.ts";
import { InstanceStats } from "../api/schema/stats.ts";
import { runningDaemonPid, startDaemon } from "../control/daemon-process.ts";
import { probeSocket } from "../control/socket.ts";
import { statePaths, type StatePaths } from "../paths.ts";

/** aegisd as seen from the shim. */
export class AegisdFront {
  readonly paths: StatePaths;
  private readonly client: AegisClient;

  constructor(home?: string) {
    this.paths = statePaths(home);
    this.client = new AegisClient(this.paths.socket);
  }

  /**
   * Start aegisd if it does not run (as `aegis up` would). Shims of
   * containers created together race to start it: the loser's aegisd finds
   * the socket taken and exits, which is fine once the winner answers.
   */
  async ensureRunning(): Promise<void> {
    try {
      await startDaemon(this.paths);
    } catch (err) {
      const deadline = Date.now() + 10_000;
      while (Date.now() < deadline) {
        if (runningDaemonPid(this.paths) !== null && (await probeSocket(this.paths.socket))) return;
        await Bun.sleep(100);
      }
      throw err;
    }
  }

  /** Boot an instance whose root filesystem is `rootfsDir`; resolves once it runs. */
  async createInstance(rootfsDir: string, shape: { memory_mb?: number; vcpus?: number; netns_path?: string }): Promise<Instance> {
    return await this.client.request(Instance, "POST", "/v1/instances", { rootfs_dir: rootfsDir, pause_after_s: 0, stop_after_s: 0, ...shape });
  }

  /** Pause the instance's VM. */
  async pause(id: string): Promise<void> {
    await this.client.raw("POST", `/v1/instances/${encodeURIComponent(id)}/pause`);
  }

  /** Resume the instance's VM. */
  async resume(id: string): Promise<void> {
    await this.client.raw("POST", `/v1/instances/${encodeURIComponent(id)}/resume`);
  }

  /** Make `path` of the instance's rootfs read-only in the guest (a `ro` bind mount). */
  async readOnly(id: string, path: string): Promise<void> {
    await this.client.raw("POST", `/v1/instances/${encodeURIComponent(id)}/files/readonly?path=${encodeURIComponent(path)}`);
  }

  /** One resource-use sample of the instance (shim/stats.ts). */
  async stats(id: string): Promise<InstanceStats> {
    return await this.client.request(InstanceStats, "GET", `/v1/instances/${encodeURIComponent(id)}/stats`);
  }

  /** Stop and delete the instance; an instance that is already gone is fine. */
  async deleteInstance(id: string): Promise<void> {
    const res = await fetch(`http://aegis/v1/instances/${encodeURIComponent(id)}`, { unix: this.paths.socket, method: "DELETE" });
    if (res.ok || res.status === 404) return;
    throw new Error(`aegisd could not delete instance ${id}: ${res.status} ${(await res.text()).slice(0, 300)}`);
  }

  /** The state of instance `id`, or null when it does not exist. */
  async instanceState(id: string): Promise<string | null> {
    const res = await fetch(`http://aegis/v1/instances/${encodeURIComponent(id)}`, { unix: this.paths.socket });
    if (res.status === 404) return null;
    if (!res.ok) throw new Error(`aegisd answered ${res.status} for instance ${id}`);
    return z.object({ state: z.string() }).parse(await res.json()).state;
  }

  /** Open an exec session WebSocket on instance `id`. */
  session(id: string): WebSocket {
    return new WebSocket(`ws+unix://${this.paths.socket}:/v1/instances/${encodeURIComponent(id)}/exec/session`);
  }
}

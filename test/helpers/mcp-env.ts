/**
 * The daemon's real service graph (createServices over a SQLite registry in a
 * temporary AEGIS_HOME) with the VM layer replaced by a fake backend whose
 * VMs have a real host ControlChannel and a scripted guest at the other end
 * of its socket. The guest answers the `run` of each instance's command and
 * sends `mcp.*` requests exactly as the harness relays them, so tests see the
 * MCP host as a guest does: JSON-RPC results and errors on the wire. Only
 * `ImagesService.resolve` is a stand-in (no registry pulls in unit tests).
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Socket } from "bun";
import { NotFound } from "../../src/api/errors.ts";
import { errorResponse, LineSplitter, notification, request, response, type RpcErrorObject } from "../../src/api/jsonrpc.ts";
import type { InstanceCreate } from "../../src/api/schema/instances.ts";
import type { ImageRecord } from "../../src/api/schema/images.ts";
import type { Logger } from "../../src/daemon/api/deps.ts";
import { createServices } from "../../src/daemon/services.ts";
import { statePaths } from "../../src/paths.ts";
import type { Backend, BackendCapabilities, Vm, VmSpec } from "../../src/vmm/backend.ts";
import { ControlChannel } from "../../src/vmm/control-channel.ts";

/** What the guest got back for one request: a result or a JSON-RPC error. */
export type Answer = { result?: any; error?: RpcErrorObject & { data?: any } };

/** The guest side of one VM's control channel (the harness relaying `aegis-mcp-guest`). */
export class FakeGuest {
  /** `run` requests the host sent (the instance's command first). */
  readonly runs: { id: string; argv: string[]; env: Record<string, string>; primary?: boolean }[] = [];
  /** Notifications the host sent (e.g. `tether.frame`), in order. */
  readonly notifications: { method: string; params: any }[] = [];
  private nextId = 1;
  private gone = false;
  private readonly waiting = new Map<number, (a: Answer) => void>();
  private readonly split = new LineSplitter();
  sock!: Socket<undefined>;

  /** Send one `mcp.*` request and await the host's answer. */
  request(method: string, params: unknown = {}): Promise<Answer> {
    if (this.gone) return Promise.resolve({ error: { code: 0, message: "control channel closed" } });
    const id = this.nextId++;
    const answer = new Promise<Answer>((resolve) => this.waiting.set(id, resolve));
    this.sock.write(request(id, method, params));
    return answer;
  }

  /** The host end went away (VM gone): requests still waiting never get an answer. */
  closed(): void {
    this.gone = true;
    for (const resolve of this.waiting.values()) resolve({ error: { code: 0, message: "control channel closed before an answer" } });
    this.waiting.clear();
  }

  /** Feed bytes from the host. */
  data(bytes: Uint8Array): void {
    for (const line of this.split.push(bytes)) {
      const msg = JSON.parse(line);
      if (msg.method === "run") {
        this.runs.push(msg.params);
        this.sock.write(response(msg.id, { pid: 100 + this.runs.length }));
      } else if (msg.method !== undefined && msg.id !== undefined) {
        this.sock.write(errorResponse(msg.id, { code: -32601, message: `fake guest does not serve ${msg.method}` }));
      } else if (msg.method !== undefined) {
        this.notifications.push({ method: msg.method, params: msg.params });
      } else if (typeof msg.id === "number") {
        this.waiting.get(msg.id)?.({ result: msg.result, error: msg.error });
        this.waiting.delete(msg.id);
      }
    }
  }
}

let pids = 4_000_000;

/** A VM that is only a control channel and a guest; stop/kill end it at once, as QEMU's exit closes the channel. */
export class FakeVm implements Vm {
  readonly pid = ++pids;
  readonly consoleLog: string;
  readonly exited: Promise<number>;
  /** host port -> guest port forwarded while running (hostfwd_add / hostfwd_remove). */
  readonly forwards = new Map<number, number>();
  addPortForward?: (hostPort: number, guestPort: number) => Promise<void>;
  removePortForward?: (hostPort: number) => Promise<void>;
  private exit!: (code: number) => void;

  constructor(
    readonly id: string,
    readonly spec: VmSpec,
    readonly channel: ControlChannel,
    readonly guest: FakeGuest,
    hotplugPorts: boolean,
    /** How long the VMM process takes to go once stopped or killed. */
    private readonly exitDelayMs = 0,
  ) {
    this.consoleLog = join(spec.runDir, "console.log");
    for (const p of spec.ports) this.forwards.set(p.hostPort, p.guestPort);
    this.exited = new Promise<number>((r) => (this.exit = r)).then((code) => {
      guest.sock.end();
      guest.closed();
      channel.close(`VM ${id} exited (code ${code})`);
      return code;
    });
    if (hotplugPorts) {
      this.addPortForward = async (host, guestPort) => void this.forwards.set(host, guestPort);
      this.removePortForward = async (host) => void this.forwards.delete(host);
    }
  }
  async pause(): Promise<void> {}
  async resume(): Promise<void> {}
  async stop(): Promise<void> {
    this.end(0);
  }
  kill(): void {
    this.end(137);
  }
  private end(code: number): void {
    if (this.exitDelayMs === 0) this.exit(code);
    else setTimeout(() => this.exit(code), this.exitDelayMs);
  }
}

/** A backend whose VMs are FakeVms; `failBoot` makes boots of a given VM id fail as QEMU would. */
export class FakeBackend implements Backend {
  readonly name = "qemu" as const;
  readonly capabilities: BackendCapabilities = { pauseResume: true, memorySnapshots: false, diskLayers: true };
  /** The latest VM booted for each instance id. */
  readonly vms = new Map<string, FakeVm>();
  hotplugPorts = true;
  /** How long a VM takes to exit once stopped or killed (QEMU is never instant). */
  exitDelayMs = 0;
  failBoot: (spec: VmSpec) => boolean = () => false;

  async boot(spec: VmSpec): Promise<Vm> {
    if (this.failBoot(spec)) throw new Error(`qemu-system-x86_64: cannot allocate ${spec.memoryMb} MiB`);
    mkdirSync(spec.runDir, { recursive: true });
    const channel = ControlChannel.listen(join(spec.runDir, "ctl.sock"));
    const vm = await attachGuest(spec, channel, this.hotplugPorts, this.exitDelayMs);
    this.vms.set(spec.id, vm);
    return vm;
  }
}

async function attachGuest(spec: VmSpec, channel: ControlChannel, hotplugPorts: boolean, exitDelayMs: number): Promise<FakeVm> {
  const guest = new FakeGuest();
  guest.sock = await Bun.connect<undefined>({ unix: channel.path, socket: { data: (_s, d) => guest.data(d), close: () => guest.closed() } });
  guest.sock.write(notification("ready", { version: "fake", uptime_ms: 1 }));
  await channel.waitReady(5000);
  return new FakeVm(spec.id, spec, channel, guest, hotplugPorts, exitDelayMs);
}

/** The router origin the tests give the MCP host. */
export const ROUTER_ORIGIN = "http://127.0.0.1:18099";

/** A fake image record for the resolve stand-in. */
function imageRecord(ref: string, home: string): ImageRecord {
  const hex = Bun.hash(ref).toString(16).padStart(16, "0").repeat(4);
  return {
    ref,
    digest: `sha256:${hex}`,
    index_digest: null,
    config_digest: `sha256:${hex}`,
    platform: "linux/amd64",
    size: 1,
    layers: [],
    rootfs: join(home, `${hex}.ext4`),
    rootfs_size: 1,
    env_path: "/usr/local/bin:/usr/bin:/bin",
    working_dir: null,
    created_at: new Date().toISOString(),
  };
}

/** A test environment: real services, fake VMs, and helpers to act as a guest. */
export function mcpEnv() {
  const home = mkdtempSync(join(tmpdir(), "aegis-mcp-"));
  const paths = statePaths(home);
  mkdirSync(paths.data, { recursive: true });
  const logLines: string[] = [];
  const log: Logger = {
    info: (m, f) => logLines.push(JSON.stringify({ m, ...f })),
    warn: (m, f) => logLines.push(JSON.stringify({ m, ...f })),
    error: (m, f) => logLines.push(JSON.stringify({ m, ...f })),
  };
  const backend = new FakeBackend();
  const services = createServices(paths, log, { backend, reason: "fake backend" });
  services.mcp.routerOrigin = () => ROUTER_ORIGIN;
  /** Images the stand-in registry has; anything else is NotFound as a failed pull would be. */
  const registry = new Set<string>(["busybox", "alpine:3.21"]);
  /** Every resolve asked for, in order. */
  const resolved: string[] = [];
  /** Milliseconds each resolve takes (a pull is never instant; makes races observable). */
  let resolveDelayMs = 0;
  services.images.resolve = async (ref: string) => {
    resolved.push(ref);
    if (resolveDelayMs > 0) await Bun.sleep(resolveDelayMs);
    if (!registry.has(ref)) throw new NotFound(`image ${ref} not found in its registry`, "check the name and tag");
    return imageRecord(ref, home);
  };

  /** The guest of `id`'s current VM. */
  const guest = (id: string): FakeGuest => {
    const vm = backend.vms.get(id);
    if (!vm) throw new Error(`no VM was booted for ${id}`);
    return vm.guest;
  };

  return {
    home,
    services,
    backend,
    logLines,
    registry,
    resolved,
    setResolveDelay(ms: number) {
      resolveDelayMs = ms;
    },
    guest,
    /** Create a top-level instance through the service (as `aegis instance start` does) and return its id and guest. */
    async top(input: Partial<InstanceCreate> = {}) {
      const inst = await services.instances.create({ command: ["aegis-agent"], ...input });
      return { id: inst.id, handle: inst.handle, guest: guest(inst.id) };
    },
    async [Symbol.asyncDispose]() {
      await services.instances.shutdown();
      services.db.close();
      rmSync(home, { recursive: true, force: true });
    },
  };
}

/** The result of an answer, failing the test with the error when it is one. */
export function ok(a: Answer): any {
  if (a.error) throw new Error(`expected a result, got error ${a.error.code}: ${a.error.message}`);
  return a.result;
}

/** The error of an answer, failing the test when it succeeded. */
export function refused(a: Answer): RpcErrorObject & { data?: any } {
  if (!a.error) throw new Error(`expected an error, got result ${JSON.stringify(a.result)}`);
  return a.error;
}

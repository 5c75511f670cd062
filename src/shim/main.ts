/**
 * @module shim/main
 * `containerd-shim-aegis-v2`, the containerd runtime v2 shim role of the
 * one binary (runtime name `io.containerd.aegis.v2`). containerd runs it
 * in the bundle directory with Go-style flags (`-namespace`, `-address`,
 * `-publish-binary`, `-id`, `-bundle`, `-debug`, `-socket`) and an action:
 *
 *   - `start`: start the shim server detached (its own session, stdio
 *     closed: containerd reads this command's combined output), wait until
 *     its socket listens, write `address` in the bundle and print only the
 *     ttrpc address (containerd 1.6 takes the whole output as the address);
 *   - `delete`: cleanup after a shim that died: delete the VM the bundle
 *     names, unmount the rootfs, print a `DeleteResponse`;
 *   - `serve` (ours, hidden): the ttrpc task server itself (every task of a
 *     CRI pod, shim/task-router.ts).
 *
 * Sockets live in `s/` beside containerd's socket (`-address`), named by a
 * hash of address, namespace and id as containerd's own shims name theirs,
 * so one containerd's shims never collide with another's; for a container of
 * a CRI pod the id hashed is the sandbox id, so `start` finds the pod's shim
 * listening and prints its address instead of starting a second one.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { AegisdFront } from "./aegisd.ts";
import { EventPublisher } from "./events.ts";
import { unmountRootfs } from "./mounts.ts";
import { encode, timestamp } from "./proto/index.ts";
import { groupingId, removePodDirs } from "./sandbox.ts";
import { INSTANCE_FILE } from "./task-service.ts";
import { TaskRouter } from "./task-router.ts";
import { serve } from "./ttrpc.ts";
import { selfCommand } from "../paths.ts";
import { VERSION } from "../api/version.ts";

/** Parsed command line. */
export interface ShimArgs {
  namespace: string;
  address: string;
  publishBinary: string;
  id: string;
  bundle: string;
  socket: string;
  debug: boolean;
  action: string;
}

const VALUE_FLAGS: Record<string, keyof ShimArgs> = { namespace: "namespace", address: "address", "publish-binary": "publishBinary", id: "id", bundle: "bundle", socket: "socket" };

/** Parse Go `flag`-style arguments (`-f v`, `--f v`, `-f=v`); unknown flags are errors. */
export function parseShimArgs(argv: string[]): ShimArgs {
  const out: ShimArgs = { namespace: "", address: "", publishBinary: "containerd", id: "", bundle: "", socket: "", debug: false, action: "" };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith("-")) {
      if (out.action) throw new Error(`unexpected argument ${JSON.stringify(a)} after action ${out.action}`);
      out.action = a;
      continue;
    }
    const [name, inline] = a.replace(/^--?/, "").split(/=(.*)/s, 2) as [string, string | undefined];
    if (name === "debug") {
      out.debug = inline === undefined || inline === "true";
      continue;
    }
    if (name === "v") {
      out.action = "version";
      continue;
    }
    const key = VALUE_FLAGS[name];
    if (!key) throw new Error(`unknown flag -${name}`);
    const value = inline ?? argv[++i];
    if (value === undefined) throw new Error(`flag -${name} needs a value`);
    (out as unknown as Record<string, string>)[key] = value;
  }
  if (!out.action) throw new Error("no action: expected start, delete or -v");
  return out;
}

/** The shim's socket path for `args` (see the module notes). */
export function socketPath(args: ShimArgs): string {
  const digest = createHash("sha256").update(join(args.address, args.namespace, args.id)).digest("hex");
  return join(dirname(args.address || "/run/containerd/containerd.sock"), "s", digest);
}

function flagArgv(args: ShimArgs): string[] {
  return ["-namespace", args.namespace, "-address", args.address, "-publish-binary", args.publishBinary, "-id", args.id, ...(args.debug ? ["-debug"] : [])];
}

async function listening(path: string): Promise<boolean> {
  try {
    const s = await Bun.connect({ unix: path, socket: { data() {} } });
    s.end();
    return true;
  } catch {
    return false;
  }
}

async function start(args: ShimArgs): Promise<void> {
  // The tasks of a CRI pod share the sandbox's shim: the socket is named by the sandbox id (shim/sandbox.ts).
  const sock = args.socket || socketPath({ ...args, id: groupingId(process.cwd(), args.id) });
  const address = `unix://${sock}`;
  if (!(await listening(sock))) {
    mkdirSync(dirname(sock), { recursive: true, mode: 0o711 });
    rmSync(sock, { force: true });
    const child = Bun.spawn([...selfCommand("__containerd-shim"), ...flagArgv(args), "-socket", sock, "serve"], {
      cwd: process.cwd(),
      stdio: ["ignore", "ignore", "ignore"],
      detached: true,
      env: process.env as Record<string, string>,
    });
    child.unref();
    const deadline = Date.now() + 10_000;
    while (!(await listening(sock))) {
      if (child.exitCode !== null) throw new Error(`the shim server exited with code ${child.exitCode} before listening on ${sock}`);
      if (Date.now() > deadline) throw new Error(`the shim server did not listen on ${sock} within 10 s`);
      await Bun.sleep(10);
    }
  }
  writeFileSync("address", address);
  process.stdout.write(address);
}

function logger(): (msg: string) => void {
  // containerd reads the `log` FIFO in the bundle and copies it to its own log.
  let fd: number | null = null;
  if (existsSync("log")) fd = openSync("log", "r+");
  return (msg) => {
    const line = `${new Date().toISOString()} containerd-shim-aegis-v2: ${msg}\n`;
    if (fd !== null) writeSync(fd, line);
  };
}

async function serveMain(args: ShimArgs): Promise<void> {
  const log = logger();
  const events = new EventPublisher(process.env.TTRPC_ADDRESS ?? "", args.namespace, log);
  let server: ReturnType<typeof serve> | null = null;
  const service = new TaskRouter({
    front: new AegisdFront(),
    events,
    log,
    shutdown: () => {
      server?.stop();
      rmSync(args.socket, { force: true });
      void events.close().finally(() => process.exit(0));
    },
  });
  server = serve(args.socket, service.services(), (err) => log(`ttrpc: ${(err as Error).message ?? String(err)}`));
  log(`serving task ${args.id} (and its pod's) on ${args.socket}`);
}

async function deleteMain(args: ShimArgs): Promise<void> {
  const bundle = resolve(args.bundle || process.cwd());
  const file = join(bundle, INSTANCE_FILE);
  if (existsSync(file)) {
    const front = new AegisdFront();
    await front.deleteInstance(readFileSync(file, "utf8").trim());
    rmSync(file, { force: true });
  }
  await unmountRootfs(join(bundle, "rootfs"));
  await removePodDirs(bundle);
  // The process was killed with the shim: report it as SIGKILLed, as the runc shim does.
  process.stdout.write(encode("containerd.task.v2.DeleteResponse", { pid: 0, exit_status: 128 + 9, exited_at: timestamp(Date.now()) }));
}

/** Role entry point. */
export async function main(argv: string[]): Promise<void> {
  let args: ShimArgs;
  try {
    args = parseShimArgs(argv);
  } catch (err) {
    process.stderr.write(`containerd-shim-aegis-v2: ${(err as Error).message}\nusage: containerd-shim-aegis-v2 -namespace NS -address ADDR -id ID start|delete\n`);
    process.exit(2);
  }
  if (args.action === "version") {
    process.stdout.write(`containerd-shim-aegis-v2:\n  Version: ${VERSION}\n`);
    return;
  }
  if (args.action === "start") return await start(args);
  if (args.action === "delete") return await deleteMain(args);
  if (args.action === "serve") return await serveMain(args);
  process.stderr.write(`containerd-shim-aegis-v2: unknown action ${JSON.stringify(args.action)} (expected start or delete)\n`);
  process.exit(2);
}

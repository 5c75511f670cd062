/**
 * @module main
 * Entry point of the one Aegis executable. It only dispatches: the role comes
 * from `basename(argv[0])` (the links `make install` creates) or, for the same
 * roles, from a hidden first argument (`aegis __daemon`). Each role module is
 * imported lazily so a role loads only what it needs (the guest harness boots
 * faster when it never evaluates the CLI or the daemon).
 */
import { basename } from "node:path";

type RoleMain = (argv: string[]) => Promise<void>;

/** Role name -> loader of its `main(argv)`. */
const roles: Record<string, () => Promise<RoleMain>> = {
  aegis: () => import("./cli/main.ts").then((m) => m.main),
  aegisd: () => import("./daemon/main.ts").then((m) => m.main),
  "aegis-harness": () => import("../guest/harness/main.ts").then((m) => m.main),
  "aegis-agent": () => import("../guest/agent/main.ts").then((m) => m.main),
  "aegis-gateway": () => import("./gateway/main.ts").then((m) => m.main),
  "aegis-vmm-worker": () => import("./vmm/worker-main.ts").then((m) => m.main),
  "aegis-mcp-guest": () => import("../guest/mcp/main.ts").then((m) => m.main),
  "aegis-mcp": () => import("./mcp/main.ts").then((m) => m.main),
  "containerd-shim-aegis-v2": () => import("./shim/main.ts").then((m) => m.main),
  __setup: () => import("./vmm/assets/index.ts").then((m) => m.setupMain),
};

/** Hidden first arguments that select a role when argv[0] is `aegis`. */
const hiddenRoles: Record<string, string> = {
  __daemon: "aegisd",
  __gateway: "aegis-gateway",
  __vmm: "aegis-vmm-worker",
  __harness: "aegis-harness",
  __agent: "aegis-agent",
  "__mcp-guest": "aegis-mcp-guest",
  __mcp: "aegis-mcp",
  __setup: "__setup",
  "__containerd-shim": "containerd-shim-aegis-v2",
};

/** Pick the role for this process and the arguments it receives. */
export function resolveRole(argv0: string, args: string[]): { role: string; args: string[] } {
  const hidden = args[0] !== undefined ? hiddenRoles[args[0]] : undefined;
  if (hidden) return { role: hidden, args: args.slice(1) };
  const name = basename(argv0);
  return { role: name in roles ? name : "aegis", args };
}

async function main(): Promise<void> {
  // In a compiled binary argv[1] is the first user argument; from source it is the script path.
  const { role, args } = resolveRole(process.argv0, process.argv.slice(2));
  const run = await roles[role]!();
  await run(args);
}

main().catch((err: unknown) => {
  process.stderr.write(`aegis: fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});

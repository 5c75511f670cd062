/**
 * @module vmm/network/netns
 * One network namespace per VM (docs/design/network-policy-research.md §5):
 * `aegis-<N>` holds the VM's QEMU, whose user networking (slirp) then
 * connects from inside it; a veth pair joins it to the host (`aegis<N>` with
 * 10.231.x.1/30 on the host, `eth0` with .2 in the namespace, default route
 * via .1); its `/etc/netns/aegis-<N>/resolv.conf` names the host end, where
 * aegisd answers DNS (dns.ts); the host's nftables table (nft.ts) holds the
 * policy. A guest's 10.0.2.2 now means the namespace's own empty loopback.
 *
 * Slots are claimed machine-wide, across every aegisd, by creating
 * `/run/aegis-net/<N>.json` exclusively (`{ pid, home }`); a claim whose pid
 * is dead is stale, and {@link reapStaleSlots} (daemon start) removes its
 * namespace, veth and nft entries.
 *
 * Live restore: a claim also names the VM's QEMU (`vm`: pid + /proc start
 * time) once it runs. A starting aegisd re-adopts its home's VMs first and
 * re-claims their slots for its own pid ({@link reclaimSlot}); the reap that
 * follows removes its home's other dead claims, and another home's only when
 * the VM named in them no longer runs (that home's next aegisd may still
 * adopt it). Root is required (namespaces, veth,
 * nftables); {@link isolationSupport} says why not otherwise.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { processStartTime, sameProcess } from "../vm-process.ts";
import { runNft, slotAddresses, TABLE, baseTable, gatePlumbing, vmTeardown } from "./nft.ts";
import { removeEgress } from "./egress-proxy.ts";

/** Where slot claims live (read on each use, so a test can point it elsewhere). */
export function slotsDir(): string {
  return process.env.AEGIS_NET_SLOTS_DIR || "/run/aegis-net";
}

/** Namespace name of slot `n`. */
export function nsName(n: number): string {
  return `aegis-${n}`;
}

/** Why VM network isolation cannot run here, or undefined when it can. */
export function isolationSupport(): string | undefined {
  if (process.platform !== "linux") return "network isolation needs Linux network namespaces";
  if (process.getuid?.() !== 0) return "aegisd is not running as root (network namespaces and nftables need root)";
  for (const tool of ["ip", "nft"]) if (!Bun.which(tool)) return `${tool} is not installed (apt-get install iproute2 nftables)`;
  return undefined;
}

function env() {
  return { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin" };
}

/** Run `ip -batch -` with these lines. */
async function ipBatch(lines: string[], force = false, netns?: string): Promise<void> {
  const proc = Bun.spawn(["ip", ...(netns ? ["-n", netns] : []), ...(force ? ["-force"] : []), "-batch", "-"], { stdin: new Blob([`${lines.join("\n")}\n`]), stdout: "pipe", stderr: "pipe", env: env() });
  const [, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0 && !force) throw new Error(`ip -batch failed (exit ${code}): ${err.trim()}`);
}

interface Claim {
  pid: number;
  home: string;
  /** The VM's QEMU once spawned (live restore: a running VM keeps its slot across aegisd restarts). */
  vm?: { pid: number; startTime: string };
}

/** Whether `pid` runs; a zombie (an aegisd killed with SIGKILL whose parent has not reaped it yet) is dead. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
  return processStartTime(pid) !== null;
}

function readClaim(path: string): Claim | undefined {
  try {
    const v = JSON.parse(readFileSync(path, "utf8")) as Partial<Claim>;
    if (typeof v.pid !== "number" || typeof v.home !== "string") return undefined;
    const vm = v.vm && typeof v.vm.pid === "number" && typeof v.vm.startTime === "string" ? { pid: v.vm.pid, startTime: v.vm.startTime } : undefined;
    return { pid: v.pid, home: v.home, ...(vm ? { vm } : {}) };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    if (err instanceof SyntaxError) return undefined; // half-written by a process that died: stale
    throw err;
  }
}

/** Replace a claim file atomically (write beside it, rename over it). */
function writeClaim(slot: number, claim: Claim): void {
  const path = join(slotsDir(), `${slot}.json`);
  const tmp = `${path}.${randomBytes(4).toString("hex")}.tmp`;
  writeFileSync(tmp, JSON.stringify(claim), { mode: 0o600 });
  renameSync(tmp, path);
}

/** Record the VM's QEMU in this process's claim of `slot` (its namespace then outlives this aegisd while the VM runs). */
export function recordSlotVm(slot: number, pid: number): void {
  const claim = readClaim(join(slotsDir(), `${slot}.json`));
  const startTime = processStartTime(pid);
  if (claim?.pid !== process.pid || startTime === null) return;
  writeClaim(slot, { ...claim, vm: { pid, startTime } });
}

/**
 * Take over the claim of `slot` that a previous aegisd of `home` left (live
 * restore), leaving the namespace as it is.
 * @throws Error when the claim is gone, belongs to another home, or its aegisd still runs
 */
export function reclaimSlot(slot: number, home: string): void {
  const path = join(slotsDir(), `${slot}.json`);
  const claim = readClaim(path);
  if (!claim) throw new Error(`network slot ${slot} is no longer claimed (${path} is missing): its namespace was removed`);
  if (claim.home !== home) throw new Error(`network slot ${slot} is claimed by AEGIS_HOME ${claim.home}, not ${home}`);
  if (claim.pid !== process.pid && alive(claim.pid)) throw new Error(`network slot ${slot} is held by the running process ${claim.pid}`);
  if (!existsSync(`/run/netns/${nsName(slot)}`)) throw new Error(`network namespace ${nsName(slot)} is gone`);
  writeClaim(slot, { ...claim, pid: process.pid });
}

/** Kill the processes in `slot`'s namespace named `comm` (a previous aegisd's socat relays); returns their pids. */
export async function killInNetns(slot: number, comm: string): Promise<number[]> {
  const proc = Bun.spawn(["ip", "netns", "pids", nsName(slot)], { stdout: "pipe", stderr: "pipe", env: env() });
  const [out, , code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) return [];
  const killed: number[] = [];
  for (const pid of out.split(/\s+/).filter(Boolean).map(Number)) {
    let name: string;
    try {
      name = readFileSync(`/proc/${pid}/comm`, "utf8").trim();
    } catch {
      continue; // exited meanwhile
    }
    if (name !== comm) continue;
    try {
      process.kill(pid, "SIGKILL");
      killed.push(pid);
    } catch {
      // exited meanwhile
    }
  }
  // Wait (bounded) until they are gone, so their listening ports are free again.
  for (let i = 0; i < 50 && killed.some((p) => processStartTime(p) !== null); i++) await Bun.sleep(20);
  return killed;
}

/** Claim a free slot for this process. */
function claimSlot(home: string): number {
  mkdirSync(slotsDir(), { recursive: true, mode: 0o700 });
  const start = 1 + Math.floor(Math.random() * 16000);
  for (let i = 0; i < 16382; i++) {
    const n = ((start + i - 1) % 16382) + 1;
    const path = join(slotsDir(), `${n}.json`);
    try {
      writeFileSync(path, JSON.stringify({ pid: process.pid, home } satisfies Claim), { flag: "wx", mode: 0o600 });
      return n;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
  }
  throw new Error(`no free VM network slot in ${slotsDir()} (16382 in use)`);
}

let tableReady: Promise<void> | undefined;

/** Create the shared `inet aegis` table when it does not exist; enable IPv4 forwarding (host-wide, needed for the VMs' NAT). */
export function ensureTable(): Promise<void> {
  tableReady ??= (async () => {
    writeFileSync("/proc/sys/net/ipv4/ip_forward", "1\n");
    try {
      await runNft("", ["list", "table", ...TABLE.split(" ")]);
    } catch {
      // Absent (nft says "No such file or directory"); any other problem shows in the create below.
      await runNft(baseTable());
      return;
    }
    await runNft(gatePlumbing()); // a table an older aegisd made has no prerouting hook yet
  })();
  tableReady.catch(() => (tableReady = undefined));
  return tableReady;
}

/** One VM's namespace and veth (the nft part is applied by the caller). */
export interface Netns {
  slot: number;
  name: string;
  /** Host end of the veth (the VM's DNS server and relay target). */
  hostIp: string;
  /** Namespace end (QEMU's hostfwd listeners bind here). */
  nsIp: string;
  iface: string;
  chain: string;
}

/** Create a namespace for a VM; the slot is released again when this throws. */
export async function createNetns(home: string): Promise<Netns> {
  const slot = claimSlot(home);
  const a = slotAddresses(slot);
  const name = nsName(slot);
  try {
    await removeNetns(slot, []); // leftovers of a process that died holding this slot number earlier
    mkdirSync(`/etc/netns/${name}`, { recursive: true });
    writeFileSync(`/etc/netns/${name}/resolv.conf`, `nameserver ${a.host}\n`);
    await ipBatch([
      `netns add ${name}`,
      `link add ${a.iface} type veth peer name eth0 netns ${name}`,
      `addr add ${a.host}/30 dev ${a.iface}`,
      `link set ${a.iface} up`,
    ]);
    await ipBatch([`addr add ${a.ns}/30 dev eth0`, "link set eth0 up", "link set lo up", `route add default via ${a.host}`], false, name);
    return { slot, name, hostIp: a.host, nsIp: a.ns, iface: a.iface, chain: a.chain };
  } catch (err) {
    await removeNetns(slot, []);
    releaseSlot(slot);
    throw err;
  }
}

/** Remove a slot's namespace, veth, nft entries (sets named in `sets`, or found in the table) and claim. */
export async function removeNetns(slot: number, sets: string[] | undefined): Promise<void> {
  const a = slotAddresses(slot);
  const name = nsName(slot);
  await removeEgress(a.chain, a.iface); // its DNAT chain references sets removed below
  await ipBatch([`link del ${a.iface}`, `netns del ${name}`], true);
  rmSync(`/etc/netns/${name}`, { recursive: true, force: true });
  const present = await tableEntries(slot);
  if (present) {
    const allSets = sets ?? present.sets;
    const script = vmTeardown(slot, allSets.filter((s) => present.sets.includes(s)), present);
    if (script.trim()) await runNft(script);
  }
}

/** Release a slot claim of this process. */
export function releaseSlot(slot: number): void {
  const path = join(slotsDir(), `${slot}.json`);
  if (readClaim(path)?.pid === process.pid) rmSync(path, { force: true });
}

/** What of a slot the shared table still holds (undefined: no table). */
async function tableEntries(slot: number): Promise<{ fwd: boolean; inp: boolean; chains: boolean; pre: boolean; preChain: boolean; sets: string[] } | undefined> {
  let json: string;
  try {
    json = await runNft("", ["-j", "list", "table", ...TABLE.split(" ")]);
  } catch {
    return undefined; // no table: nothing to remove
  }
  const { iface, chain } = slotAddresses(slot);
  const items = (JSON.parse(json) as { nftables: Record<string, { name?: string; elem?: unknown[] }>[] }).nftables;
  const names = (kind: string) => items.flatMap((i) => (i[kind]?.name ? [i[kind]!.name!] : []));
  const mapHas = (m: string) => items.some((i) => i.map?.name === m && JSON.stringify(i.map.elem ?? []).includes(`"${iface}"`));
  return {
    fwd: mapHas("vm_fwd"),
    inp: mapHas("vm_inp"),
    chains: names("chain").includes(chain),
    pre: mapHas("vm_pre"),
    preChain: names("chain").includes(`${chain}_pre`),
    sets: names("set").filter((s) => s.startsWith(`${chain}_r`)),
  };
}

/**
 * Remove every slot whose claiming process is dead (daemon start-up, after
 * the live-restore pass): all of `home`'s, another home's only once the VM
 * named in it is gone too. Returns the slots removed.
 */
export async function reapStaleSlots(home: string): Promise<number[]> {
  if (!existsSync(slotsDir())) return [];
  const out: number[] = [];
  for (const f of readdirSync(slotsDir())) {
    const m = /^(\d+)\.json$/.exec(f);
    if (!m) continue;
    const claim = readClaim(join(slotsDir(), f));
    if (claim && alive(claim.pid)) continue;
    if (claim && claim.home !== home && claim.vm && sameProcess(claim.vm.pid, claim.vm.startTime)) continue;
    const slot = Number(m[1]);
    await removeNetns(slot, undefined);
    rmSync(join(slotsDir(), f), { force: true });
    out.push(slot);
  }
  return out;
}

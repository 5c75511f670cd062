/**
 * @module vmm/qemu-args
 * The QEMU command line for one VM, as a pure function (unit-tested without
 * booting anything). Choices, all measured in notes/qemu-guest.md:
 * - `microvm` machine (x86_64; `virt` on aarch64), `-nodefaults
 *   -no-user-config -display none -no-reboot`: the guest's `reboot -f` makes
 *   QEMU exit, which is how a VM powers off.
 * - `-cpu max` under TCG (Bun needs SSE4/AVX; the default qemu64 gets SIGILL),
 *   `-cpu host` under KVM/HVF. `tb-size=32` cuts idle RSS ~60 MB with no
 *   measurable boot cost; a booted guest fills all of it, so it is private
 *   memory of every idle VM: the backend passes 32 for cold boots and for
 *   restores (qemu.ts TB_MB_COLD / TB_MB_RESTORED, with the measurements;
 *   AEGIS_TCG_TB_MB overrides).
 * - `tsc_early_khz=<host kHz>` on the kernel command line: without it ~10% of
 *   TCG boots hang calibrating the TSC (microvm has no HPET/PM timer).
 * - `aegis.nojit=1` under TCG: the harness runs Bun with JavaScriptCore's
 *   baseline JIT off, because QEMU re-translating JIT output made Bun's
 *   start-up ~3x slower (2.0 s vs 0.7 s in the guest).
 * - modern virtio-mmio (`force-legacy=false`), required by vhost-user-fs.
 * - guest RAM is always the explicit backend `mem0` (so its migration block
 *   name is the same whatever backs it): anonymous by default, a shared memfd
 *   for virtiofs, or a file (`memoryFile`) for templates. A template VM's RAM
 *   is its shared file and it migrates with the `x-ignore-shared` capability
 *   (set over QMP: QEMU 7.2 has no `-global` for it), so its snapshot holds
 *   only the device state; a VM started from the template maps that file
 *   copy-on-write (`share=off`) instead of streaming and decompressing it,
 *   with `-incoming defer` so the same capability is set before the load
 *   (templates.ts). Other VMs migrate all RAM; aegisd splits an instance's
 *   idle snapshot into the same two parts (snapshot-split.ts), so its wake
 *   maps the RAM file the same way.
 * - a restore (`-incoming`) on x86 has no `-kernel`/`-initrd`/`-append`
 *   (bootArgs below): QEMU would hold a 13.5 MB copy of the kernel image in
 *   every restored VM for nothing. Measured with bench/density.ts (N=20,
 *   paused template clones, same machine, 2026-12-02): USS median 80.0 ->
 *   66.4 MB (QEMU's other anonymous memory 28.7 -> 15.1 MB; guest RAM
 *   14.7, TCG cache 32.0, binaries 4.6 unchanged).
 * - no virtio-balloon (free page reporting or inflate), although the guest
 *   kernel has CONFIG_PAGE_REPORTING=y and virtio_balloon.ko: QEMU 7.2
 *   discards guest pages of a file backend with fallocate(PUNCH_HOLE) on
 *   the FILE even when it is mapped `share=off`. Checked: a 256 MB
 *   `share=off` file of 0xAB bytes, balloon inflated by 8 MB -> the file's
 *   disk usage fell by 8 MB and 2224 of its pages read back as zeros. On
 *   a template clone that would zero the shared template under every other
 *   clone and every later one. (Were the discard
 *   only an madvise, a discarded page would read back the template's content
 *   instead of zeros; this guest tolerates that, as it does not assume free
 *   pages are zero: CONFIG_INIT_ON_FREE_DEFAULT_ON and page poisoning are off,
 *   and init_on_alloc zeroes at allocation.) Anonymous (cold boot) and memfd
 *   (workspace) RAM could use it; not done, as idle instances are clones.
 * - control channel: virtio-serial port `aegis.control` on a unix socket
 *   that the HOST listens on (QEMU connects as the client, so the guest's
 *   first write blocks until the host is there and `ready` cannot be lost),
 *   with `reconnect=1`: when aegisd goes away (killed, upgraded) QEMU tries
 *   the socket again every second, so the next aegisd's listener gets the
 *   running VM back (live restore; the guest's writes wait meanwhile).
 * - disks found by `serial=` in the guest: `aegis-tools` (read-only, shared
 *   by all VMs), `aegis-root` (read-only image, overlaid in the guest),
 *   `aegis-overlay` (optional writable upper layer).
 * - network: slirp (`-netdev user`, port forwards as `hostfwd`), or for a
 *   pod network (network/pod.ts) a tap in the pod's namespace with the CNI
 *   interface's MAC and the guest's addresses as `aegis.podnet=`.
 * Nothing secret is ever put here: the kernel command line carries only the
 * hostname, feature switches and a pod network's addresses, and QEMU's argv is world-readable.
 */
import type { AccelName } from "./accel.ts";
import type { PortForward } from "./backend.ts";
import { PODNET_KEY } from "../api/schema/pod-network.ts";

/** Everything the command line depends on. */
export interface QemuArgsInput {
  arch: "x86_64" | "aarch64";
  accel: AccelName;
  /** Host TSC kHz for `tsc_early_khz` (x86 TCG); omitted when unknown. */
  tscKhz?: number;
  memoryMb: number;
  vcpus: number;
  kernel: string;
  initrd: string;
  toolsDisk: string;
  rootfs: string;
  overlayDisk?: string;
  ports: PortForward[];
  /** Address the port forwards listen on: 127.0.0.1, or the VM's namespace address (network/index.ts). */
  hostfwdAddress?: string;
  /** slirp `restrict=on`: the guest can reach nothing (no network, or the reduced mode without isolation). */
  restrict?: boolean;
  hostname: string;
  /** virtiofsd socket for the `workspace` tag, when a workspace is shared. */
  virtiofsSocket?: string;
  /** What the virtiofs share is: the /workspace (default) or the root filesystem (`aegis-root`). */
  virtiofsTag?: "workspace" | "aegis-root";
  serialLog: string;
  controlSocket: string;
  qmpSocket: string;
  /** `-incoming` URI for restoring a memory snapshot. */
  incoming?: string;
  /** TCG translation-block cache size in MiB. */
  tbSizeMb?: number;
  /**
   * Guest RAM backed by a file: `shared` (template builds: the file becomes
   * the template's memory image) or private copy-on-write (VMs started from
   * the template; the file is never written).
   */
  memoryFile?: { path: string; shared: boolean };
  /** Deferred setup (template VMs): the harness mounts the rootfs only on its `setup` RPC. */
  deferSetup?: boolean;
  /**
   * Pod network mode (network/pod.ts): a tap in the pod's namespace instead
   * of slirp, the virtio-net MAC the CNI interface's, and the guest's
   * address, routes and DNS as the `aegis.podnet=` word (api/schema/pod-network.ts).
   * `ports`, `hostfwdAddress` and `restrict` do not apply then.
   */
  podNet?: { tap: string; mac: string; word: string };
}

const HOSTNAME_RE = /^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/;

/** Reject values QEMU's comma-separated option syntax would misparse. */
function optValue(what: string, v: string): string {
  if (v.includes(",")) throw new Error(`${what} ${JSON.stringify(v)} contains a comma, which QEMU option syntax cannot carry`);
  return v;
}

/** The guest kernel command line. */
export function kernelCmdline(input: Pick<QemuArgsInput, "arch" | "accel" | "tscKhz" | "hostname" | "virtiofsSocket" | "virtiofsTag" | "deferSetup" | "podNet">): string {
  if (!HOSTNAME_RE.test(input.hostname)) throw new Error(`hostname ${JSON.stringify(input.hostname)} is not a valid DNS label`);
  const console = input.arch === "x86_64" ? "ttyS0" : "ttyAMA0";
  const parts = [`console=${console}`, "quiet", "panic=-1"];
  if (input.arch === "x86_64") parts.push("reboot=t");
  if (input.arch === "x86_64" && input.accel === "tcg" && input.tscKhz) parts.push(`tsc_early_khz=${input.tscKhz}`);
  // JavaScriptCore without its baseline JIT for the harness under TCG: ~1 s faster boot (see init-script.ts).
  if (input.accel === "tcg") parts.push("aegis.nojit=1");
  parts.push(`aegis.hostname=${input.hostname}`);
  if (input.virtiofsSocket) parts.push(input.virtiofsTag === "aegis-root" ? "aegis.rootfs=virtiofs" : "aegis.workspace=1");
  if (input.deferSetup) parts.push("aegis.defer=1");
  if (input.podNet) {
    if (!/^[A-Za-z0-9_-]+$/.test(input.podNet.word)) throw new Error("the aegis.podnet value must be base64url");
    parts.push(`${PODNET_KEY}=${input.podNet.word}`);
  }
  return parts.join(" ");
}

/** The `mem0` RAM backend object. */
function memoryBackend(input: QemuArgsInput): string {
  const size = `size=${input.memoryMb}M`;
  if (input.virtiofsSocket) return `memory-backend-memfd,id=mem0,${size},share=on`;
  if (input.memoryFile) {
    return `memory-backend-file,id=mem0,${size},mem-path=${optValue("memory file path", input.memoryFile.path)},share=${input.memoryFile.shared ? "on" : "off"}`;
  }
  return `memory-backend-ram,id=mem0,${size}`;
}

/** The guest's one NIC: slirp (`user`, with the port forwards) or, for a pod network, the pod namespace's tap. */
function netdevArgs(input: QemuArgsInput): string[] {
  if (input.podNet) {
    const { tap, mac } = input.podNet;
    if (!/^[A-Za-z0-9_.-]{1,15}$/.test(tap)) throw new Error(`tap device name ${JSON.stringify(tap)} is not a valid interface name`);
    if (!/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(mac)) throw new Error(`MAC address ${JSON.stringify(mac)} is not lowercase aa:bb:cc:dd:ee:ff`);
    if (input.ports.length > 0) throw new Error("port forwards need QEMU user networking, which a VM on a pod network has not");
    return ["-netdev", `tap,id=n0,ifname=${tap},script=no,downscript=no`, "-device", `virtio-net-device,netdev=n0,mac=${mac}`];
  }
  const addr = input.hostfwdAddress ?? "127.0.0.1";
  const fwd = input.ports.map((p) => `,hostfwd=tcp:${addr}:${p.hostPort}-:${p.guestPort}`).join("");
  return ["-netdev", `user,id=n0${input.restrict ? ",restrict=on" : ""}${fwd}`, "-device", "virtio-net-device,netdev=n0"];
}

/**
 * `-kernel`/`-initrd`/`-append`, except for an x86 restore, where they are
 * left out: QEMU copies the whole kernel image into its own heap for fw_cfg
 * (13.5 MB anonymous memory, the USS of every paused instance), and a
 * restored guest never reads it: its kernel and command line are already in
 * the restored RAM, and with `-no-reboot` there is no reset that would boot
 * again. On microvm the RAM blocks a migration carries are the same with and
 * without `-kernel` (checked with `info ramblock` on QEMU 7.2: mem0, pc.bios
 * and the three ACPI ROMs; the linuxboot option ROM is no RAM block there), so
 * snapshots and templates taken with it restore without it. aarch64 (`virt`)
 * keeps them until that has been checked there. The command line is still
 * built, so what it validates (the hostname) is validated for restores too.
 */
function bootArgs(input: QemuArgsInput): string[] {
  const append = kernelCmdline(input);
  if (input.incoming && input.arch === "x86_64") return [];
  return ["-kernel", input.kernel, "-initrd", input.initrd, "-append", append];
}

/** Build the argv (without the qemu binary itself). */
export function buildQemuArgs(input: QemuArgsInput): string[] {
  const x86 = input.arch === "x86_64";
  const machine = x86 ? "microvm" : "virt";
  if (input.virtiofsSocket && input.memoryFile) throw new Error("a VM with a virtiofs workspace needs memfd RAM and cannot use a memory file");
  const machineOpt = `${machine},memory-backend=mem0`;
  const accel = input.accel === "tcg" ? `tcg,tb-size=${input.tbSizeMb ?? 32}` : input.accel;
  const a: string[] = [
    "-M", machineOpt,
    "-accel", accel,
    "-cpu", input.accel === "tcg" ? "max" : "host",
    "-m", String(input.memoryMb),
    "-object", memoryBackend(input),
    "-smp", String(input.vcpus),
    "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
    // Appending, so the host can rotate the file under QEMU (vmm/console-ring.ts) by copy and truncate.
    "-chardev", `file,id=console,path=${optValue("serial log path", input.serialLog)},append=on`,
    "-serial", "chardev:console",
    ...bootArgs(input),
    "-global", "virtio-mmio.force-legacy=false",
    "-chardev", `socket,id=ctl,path=${optValue("control socket path", input.controlSocket)},reconnect=1`,
    "-device", "virtio-serial-device",
    "-device", "virtserialport,chardev=ctl,name=aegis.control",
    "-qmp", `unix:${optValue("QMP socket path", input.qmpSocket)},server=on,wait=off`,
    "-drive", `id=tools,file=${optValue("tools disk path", input.toolsDisk)},format=raw,if=none,readonly=on`,
    "-device", "virtio-blk-device,drive=tools,serial=aegis-tools",
    "-drive", `id=root,file=${optValue("rootfs path", input.rootfs)},format=raw,if=none,readonly=on`,
    "-device", "virtio-blk-device,drive=root,serial=aegis-root",
  ];
  if (input.overlayDisk) {
    a.push(
      "-drive", `id=overlay,file=${optValue("overlay disk path", input.overlayDisk)},format=raw,if=none`,
      "-device", "virtio-blk-device,drive=overlay,serial=aegis-overlay",
    );
  }
  a.push(...netdevArgs(input));
  if (input.virtiofsSocket) {
    a.push(
      "-chardev", `socket,id=vfs,path=${optValue("virtiofs socket path", input.virtiofsSocket)}`,
      "-device", `vhost-user-fs-device,chardev=vfs,tag=${input.virtiofsTag ?? "workspace"}`,
    );
  }
  if (input.incoming) a.push("-incoming", input.incoming);
  return a;
}

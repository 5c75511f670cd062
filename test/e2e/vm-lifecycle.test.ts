/**
 * What the instance lifecycle needs from the QEMU backend, with real VMs
 * (TCG): a per-instance overlay disk that survives stop and cold boot, a
 * virtiofs workspace, `port.wait`, and memory snapshots that keep a running
 * process's state, refuse a workspace VM, and go stale once the disk moves on.
 *
 * Two VMs, booted together in beforeAll (never more than two QEMUs at once),
 * each reused by its describe block: "inst" (overlay disk + port forward) and
 * "ws" (workspace + overlay disk). Both are gone before the template block,
 * which runs one template VM, then its clones one at a time.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { chownSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { ensureGuestAssets, type GuestAssets } from "../../src/vmm/assets/index.ts";
import type { VmSpec } from "../../src/vmm/backend.ts";
import { GuestPortTimeoutError, isSnapshotStale, isSnapshotUnsupported } from "../../src/vmm/errors.ts";
import { runInGuest, startGuestProcess } from "../../src/vmm/guest-process.ts";
import { QemuBackend, type QemuVm } from "../../src/vmm/qemu.ts";
import { stampFile } from "../../src/vmm/snapshot-file.ts";
import { aegisBin } from "../helpers/aegis.ts";

const BOOT_TIMEOUT = 180_000;
const dir = mkdtempSync(join(tmpdir(), "aglc-"));
let assets: GuestAssets;
let backend: QemuBackend;
let inst: QemuVm;
let ws: QemuVm;
let instSpec: VmSpec;
let wsSpec: VmSpec;
const workspace = join(dir, "workspace");

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ESRCH") return false;
    throw err;
  }
  // A zombie counts as gone.
  const stat = existsSync(`/proc/${pid}/stat`) ? readFileSync(`/proc/${pid}/stat`, "utf8") : "";
  return !/\) Z /.test(stat);
}

/** The one template memory file (templates.ts) in the backend's templates directory. */
function templateRam(): string {
  const tdir = join(dirname(assets.kernel), "templates");
  const rams = readdirSync(tdir).filter((f) => f.endsWith(".ram"));
  if (rams.length !== 1) throw new Error(`expected one template memory file in ${tdir}, found ${rams.join(", ") || "none"}`);
  return join(tdir, rams[0]!);
}

async function sha256(path: string): Promise<string> {
  const h = new Bun.CryptoHasher("sha256");
  for await (const chunk of Bun.file(path).stream()) h.update(chunk);
  return h.digest("hex");
}

const sh = (vm: QemuVm, script: string) => runInGuest(vm.channel, { argv: ["/bin/sh", "-c", script] });
const out = async (vm: QemuVm, script: string) => (await sh(vm, script)).stdout.toString().trim();

beforeAll(async () => {
  assets = await ensureGuestAssets({ dir: join(dir, "guest"), binary: aegisBin() });
  backend = new QemuBackend({ assets });
  mkdirSync(workspace);
  // The guest writes as the workspace's owner (root would be squashed to nobody): give it a throwaway user.
  chownSync(workspace, 12345, 12345);
  writeFileSync(join(workspace, "from-host.txt"), "made on the host\n");
  const base = { memoryMb: 512, vcpus: 1, rootfs: assets.baseRootfs };
  instSpec = { ...base, id: "inst", runDir: join(dir, "inst"), hostname: "inst", overlayDisk: join(dir, "inst", "overlay.ext4"), ports: [{ hostPort: await freePort(), guestPort: 8080 }] };
  wsSpec = { ...base, id: "ws", runDir: join(dir, "ws"), hostname: "ws", overlayDisk: join(dir, "ws", "overlay.ext4"), workspace, ports: [] };
  [inst, ws] = (await Promise.all([backend.boot(instSpec), backend.boot(wsSpec)])) as [QemuVm, QemuVm];
}, BOOT_TIMEOUT);

afterAll(async () => {
  for (const vm of [inst, ws]) {
    if (!vm) continue;
    vm.kill();
    await vm.exited;
  }
  rmSync(dir, { recursive: true, force: true });
}, 30_000);

it("reports honest capabilities", () => {
  expect(backend.capabilities).toEqual({ pauseResume: true, memorySnapshots: true, diskLayers: true, workspaceSnapshots: false });
});

describe("an instance with an overlay disk", () => {
  it("created the overlay disk sparse and writes / into it", async () => {
    expect(statSync(instSpec.overlayDisk!).size).toBe(2048 * 1024 * 1024);
    expect(await out(inst, "echo kept > /root/x && cat /root/x")).toBe("kept");
  });

  it("waits for a guest port, reports loopback-only listeners, and times out with a typed error", async () => {
    await startGuestProcess(inst.channel, { argv: ["/bin/sh", "-c", "mkdir -p /www && exec httpd -f -p 8080 -h /www"] });
    await startGuestProcess(inst.channel, { argv: ["httpd", "-f", "-p", "127.0.0.1:9090", "-h", "/"] });
    expect(await inst.waitForPort(8080, 10_000)).toEqual({ loopbackOnly: false });
    expect(await inst.waitForPort(9090, 10_000)).toEqual({ loopbackOnly: true });
    const t0 = performance.now();
    await expect(inst.waitForPort(9999, 300)).rejects.toBeInstanceOf(GuestPortTimeoutError);
    expect(performance.now() - t0).toBeLessThan(3000);
  }, 30_000);

  it("keeps a running process's memory across snapshot, VM exit and restore, with the clock set", async () => {
    await startGuestProcess(inst.channel, { argv: ["/bin/sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > /tmp/n; sleep 0.2; done"] });
    await sh(inst, "echo counted > /www/index.html");
    await Bun.sleep(1500);
    const before = Number(await out(inst, "cat /tmp/n"));
    expect(before).toBeGreaterThan(2);
    const snap = join(dir, "inst.snap.zst");
    const coldMs = inst.bootMs;
    const t0 = performance.now();
    await inst.snapshot!(snap);
    const snapshotMs = performance.now() - t0;
    const pid = inst.pid;
    await inst.stop(); // right after a snapshot: kills at once, no guest shutdown
    expect(alive(pid)).toBe(false);
    await Bun.sleep(3000); // an "old" snapshot: the guest clock would lag by this much
    const t1 = performance.now();
    inst = (await backend.boot({ ...instSpec, restoreFrom: snap })) as QemuVm;
    const restoreMs = performance.now() - t1;
    const after = Number(await out(inst, "cat /tmp/n"));
    expect(after).toBeGreaterThanOrEqual(before); // /tmp is tmpfs: only RAM can have kept it
    expect(after).toBeLessThan(before + 5);
    await Bun.sleep(700);
    expect(Number(await out(inst, "cat /tmp/n"))).toBeGreaterThan(after); // the loop runs on
    // The guest's clock was set at restore: its seconds fall within the exec's own round trip (a slow machine stretches it).
    const clockFrom = Math.floor(Date.now() / 1000);
    const guestNow = Number(await out(inst, "date +%s"));
    expect(guestNow).toBeGreaterThanOrEqual(clockFrom - 1);
    expect(guestNow).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000) + 1);
    expect(await out(inst, "cat /root/x")).toBe("kept");
    const res = await fetch(`http://127.0.0.1:${instSpec.ports[0]!.hostPort}/index.html`);
    expect(await res.text()).toBe("counted\n");
    process.stderr.write(`vm-lifecycle: snapshot ${snapshotMs.toFixed(0)} ms (${statSync(snap).size} bytes), restore-to-answering ${restoreMs.toFixed(0)} ms, cold boot (two booting at once) ${coldMs.toFixed(0)} ms\n`);
  }, 120_000);

  it("refuses to restore a snapshot once the overlay disk was written, and a cold boot keeps the files", async () => {
    const snap = join(dir, "inst.snap.zst");
    await inst.stop(10_000); // a clean shutdown writes the overlay disk
    const err = await backend.boot({ ...instSpec, restoreFrom: snap }).catch((e: unknown) => e);
    expect(isSnapshotStale(err)).toBe(true);
    expect(String(err)).toContain("overlay disk");
    inst = (await backend.boot(instSpec)) as QemuVm;
    expect(await out(inst, "cat /root/x; cat /tmp/n 2>/dev/null || echo no-tmp")).toBe("kept\nno-tmp");
    inst.kill();
    await inst.exited;
  }, 120_000);
});

describe("an instance with a workspace", () => {
  it("mounts the host directory at /workspace, both ways", async () => {
    expect(await out(ws, "cat /workspace/from-host.txt; echo made in the guest > /workspace/from-guest.txt")).toBe("made on the host");
    expect(readFileSync(join(workspace, "from-guest.txt"), "utf8")).toBe("made in the guest\n"); // at once
    writeFileSync(join(workspace, "later.txt"), "late\n");
    let seen = "";
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline && seen !== "late") {
      seen = await out(ws, "cat /workspace/later.txt 2>/dev/null");
      if (seen !== "late") await Bun.sleep(200);
    }
    expect(seen).toBe("late");
  }, 30_000);

  it("refuses snapshot() with a typed error and keeps running", async () => {
    const err = await ws.snapshot!(join(dir, "ws.snap")).catch((e: unknown) => e);
    expect(isSnapshotUnsupported(err)).toBe(true);
    expect(String(err)).toContain("virtiofs");
    expect(existsSync(join(dir, "ws.snap"))).toBe(false);
    expect(await out(ws, "echo still-running")).toBe("still-running");
  });

  it("stops without leaving virtiofsd behind, and a cold boot sees workspace and overlay files again", async () => {
    await sh(ws, "echo on-overlay > /etc/marker");
    const vfs = ws.virtiofsdPid!;
    expect(alive(vfs)).toBe(true);
    await ws.stop(10_000);
    expect(alive(vfs)).toBe(false);
    ws = await backend.bootFromTemplate(wsSpec); // no template can carry virtiofs: a cold boot
    expect(ws.fromTemplate).toBe(false);
    expect(await out(ws, "cat /workspace/from-guest.txt /etc/marker")).toBe("made in the guest\non-overlay");
    const vfs2 = ws.virtiofsdPid!;
    ws.kill();
    await ws.exited;
    expect(alive(vfs2)).toBe(false);
  }, 120_000);
});

describe("VMs started from a template snapshot", () => {
  const tspec = async (id: string): Promise<VmSpec> => ({
    id, runDir: join(dir, id), memoryMb: 512, vcpus: 1, rootfs: assets.baseRootfs, hostname: id,
    overlayDisk: join(dir, id, "overlay.ext4"), ports: [{ hostPort: await freePort(), guestPort: 8080 }],
  });
  const urandom = "head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n'";

  it("get their own hostname, overlay disk, port forward, clock and RNG; the overlay then cold boots", async () => {
    const s1 = await tspec("t1");
    let t0 = performance.now();
    const c1 = await backend.bootFromTemplate(s1);
    const firstMs = performance.now() - t0;
    const ram = templateRam();
    const before = { ...stampFile(ram), sha: await sha256(ram) };
    let rnd1: string;
    try {
      expect(c1.fromTemplate).toBe(true);
      // First command in both clones, so only a reseed (not different work before it) can make them differ.
      rnd1 = await out(c1, urandom);
      expect(await out(c1, "hostname; grep -c t1 /etc/hosts; echo mine > /root/mine; cat /root/mine")).toBe("t1\n1\nmine");
      expect(Math.abs(Number(await out(c1, "date +%s")) - Date.now() / 1000)).toBeLessThan(2);
      // 24 MB of fresh guest RAM (tmpfs): a clone's writes must stay in its private copy, never the template's memory file.
      expect(await out(c1, "head -c 25165824 /dev/urandom > /tmp/fill && wc -c < /tmp/fill")).toBe("25165824");
      await startGuestProcess(c1.channel, { argv: ["/bin/sh", "-c", "mkdir -p /www && echo from-t1 > /www/index.html && exec httpd -f -p 8080 -h /www"] });
      await c1.waitForPort(8080, 10_000);
      expect(await (await fetch(`http://127.0.0.1:${s1.ports[0]!.hostPort}/index.html`)).text()).toBe("from-t1\n");
      await c1.stop(10_000);
    } finally {
      c1.kill();
      await c1.exited;
    }
    expect({ ...stampFile(ram), sha: await sha256(ram) }).toEqual(before);
    const s2 = await tspec("t2");
    t0 = performance.now();
    const c2 = await backend.bootFromTemplate(s2);
    const cloneMs = performance.now() - t0;
    try {
      expect(c2.fromTemplate).toBe(true);
      const rnd2 = await out(c2, urandom);
      expect(await out(c2, "hostname; cat /root/mine 2>/dev/null || echo none")).toBe("t2\nnone");
      expect(rnd2).toMatch(/^[0-9a-f]{32}$/);
      expect(rnd2).not.toBe(rnd1); // reseeded from host entropy: clones do not share the template's RNG state
    } finally {
      c2.kill();
      await c2.exited;
    }
    expect({ ...stampFile(ram), sha: await sha256(ram) }).toEqual(before);
    t0 = performance.now();
    const cold = (await backend.boot(s1)) as QemuVm;
    const coldMs = performance.now() - t0;
    try {
      expect(await out(cold, "hostname; cat /root/mine")).toBe("t1\nmine");
    } finally {
      cold.kill();
      await cold.exited;
    }
    // A template whose memory file changed is rebuilt (a new file), never restored.
    const fd = openSync(ram, "r+");
    writeSync(fd, Buffer.from([0x5a]), 0, 1, 4096);
    closeSync(fd);
    const s3 = await tspec("t3");
    const c3 = await backend.bootFromTemplate(s3);
    try {
      expect(c3.fromTemplate).toBe(true);
      expect(stampFile(templateRam()).ino).not.toBe(before.ino);
      expect(await out(c3, "hostname")).toBe("t3");
    } finally {
      c3.kill();
      await c3.exited;
    }
    process.stderr.write(`vm-lifecycle: template build + first clone ${firstMs.toFixed(0)} ms, clone restore-to-usable ${cloneMs.toFixed(0)} ms, cold boot ${coldMs.toFixed(0)} ms\n`);
  }, 300_000);
});

/**
 * The VM layer end to end: guest assets built from the compiled bin/aegis,
 * real QEMU VMs (TCG here), the harness as PID 1, the control channel.
 * One VM serves most of the file; a second one checks that a `primary`
 * process powers its VM off, and a restore from a memory snapshot reuses the
 * first VM's state. Never more than two QEMUs run at once.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { createHash } from "node:crypto";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RpcError } from "../../src/api/jsonrpc.ts";
import { RpcErrorCode } from "../../src/api/schema/control.ts";
import { ensureGuestAssets, type GuestAssets } from "../../src/vmm/assets/index.ts";
import { ChannelTimeoutError } from "../../src/vmm/control-channel.ts";
import { runInGuest, startGuestProcess } from "../../src/vmm/guest-process.ts";
import { QemuBackend, type QemuVm } from "../../src/vmm/qemu.ts";
import { aegisBin } from "../helpers/aegis.ts";

const BOOT_TIMEOUT = 120_000;
const dir = mkdtempSync(join(tmpdir(), "agvm-"));
let assets: GuestAssets;
let backend: QemuBackend;
let vm: QemuVm;

function spec(id: string) {
  return { id, runDir: join(dir, id), memoryMb: 512, vcpus: 1, rootfs: assets.baseRootfs, ports: [], hostname: id };
}

beforeAll(async () => {
  assets = await ensureGuestAssets({ dir: join(dir, "guest"), binary: aegisBin() });
  backend = new QemuBackend({ assets });
  vm = (await backend.boot(spec("vm1"))) as QemuVm;
}, BOOT_TIMEOUT);

afterAll(async () => {
  if (vm) {
    vm.kill();
    await vm.exited;
  }
  rmSync(dir, { recursive: true, force: true });
}, 30_000);

const sh = (script: string, extra: Partial<Parameters<typeof runInGuest>[1]> = {}) =>
  runInGuest(vm.channel, { argv: ["/bin/sh", "-c", script], ...extra });

describe("a booted VM", () => {
  it("runs echo and returns its output", async () => {
    const r = await runInGuest(vm.channel, { argv: ["echo", "hello"] });
    expect(r.code).toBe(0);
    expect(r.stdout.toString()).toBe("hello\n");
    expect(r.stderr.length).toBe(0);
  });

  it("propagates the exit code", async () => {
    expect((await sh("exit 3")).code).toBe(3);
  });

  it("reports death by signal as 128+N with the signal name", async () => {
    const r = await sh("kill -TERM $$");
    expect(r.code).toBe(143);
    expect(r.signal).toBe("SIGTERM");
  });

  it("forwards a signal to a running process", async () => {
    const p = await startGuestProcess(vm.channel, { argv: ["sleep", "30"] });
    await p.signal("SIGINT");
    expect(await p.exited).toEqual({ code: 130, signal: "SIGINT" });
  });

  it("refuses to start a program the rootfs's PATH does not have, naming it (the host maps this to exit 127)", async () => {
    const err = await runInGuest(vm.channel, { argv: ["no-such-program", "x"] }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(RpcError);
    expect((err as RpcError).code).toBe(RpcErrorCode.spawnFailed);
    expect((err as RpcError).message).toContain('exec: "no-such-program": executable file not found in $PATH');
  });

  it("keeps stdout and stderr apart", async () => {
    const r = await sh("echo out; echo err >&2; echo out2");
    expect(r.stdout.toString()).toBe("out\nout2\n");
    expect(r.stderr.toString()).toBe("err\n");
  });

  it("passes arguments with spaces, quotes and --help intact", async () => {
    const args = ["a b", "it's", '"q"', "--help", "", "ü €", "$HOME", "*"];
    const r = await runInGuest(vm.channel, { argv: ["/bin/sh", "-c", 'for a in "$@"; do printf "[%s]\\n" "$a"; done', "sh", ...args] });
    expect(r.stdout.toString()).toBe(args.map((a) => `[${a}]\n`).join(""));
  });

  it("delivers 20,000 lines in order", async () => {
    const r = await runInGuest(vm.channel, { argv: ["seq", "1", "20000"] });
    const lines = r.stdout.toString().split("\n");
    expect(lines.length).toBe(20001);
    expect(lines[0]).toBe("1");
    expect(lines[19999]).toBe("20000");
    expect(lines.slice(0, 20000).every((l, i) => l === String(i + 1))).toBe(true);
  }, 60_000);

  it("streams 10 MB of binary data intact", async () => {
    const r = await sh("head -c 10485760 /dev/urandom > /tmp/blob && sha256sum /tmp/blob >&2 && cat /tmp/blob");
    expect(r.code).toBe(0);
    expect(r.stdout.length).toBe(10 * 1024 * 1024);
    const guestSum = r.stderr.toString().split(" ")[0];
    expect(createHash("sha256").update(r.stdout).digest("hex")).toBe(guestSum!);
  }, 120_000);

  it("does not lose output written right before exit", async () => {
    const r = await sh("i=0; while [ $i -lt 300 ]; do echo line$i; i=$((i+1)); done; printf tail");
    expect(r.stdout.toString().endsWith("line299\ntail")).toBe(true);
  });

  it("runs the guest kernel, not the host's", async () => {
    const r = await runInGuest(vm.channel, { argv: ["uname", "-r"] });
    expect(r.stdout.toString().trim()).toBe(assets.kernelVersion);
  });

  it("cannot see host files", async () => {
    const hostFile = join(tmpdir(), `aegis-host-only-${process.pid}`);
    writeFileSync(hostFile, "secret");
    try {
      const r = await runInGuest(vm.channel, { argv: ["test", "-e", hostFile] });
      expect(r.code).toBe(1);
    } finally {
      rmSync(hostFile, { force: true });
    }
  });

  it("gives processes the requested env, AEGIS_HOST_IP, a default PATH and cwd", async () => {
    const r = await sh('echo "$FOO|$AEGIS_HOST_IP|$PATH|$(pwd)"', { env: { FOO: "bar baz" }, cwd: "/tmp/work" });
    expect(r.stdout.toString().trim()).toBe("bar baz|10.0.2.2|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin|/tmp/work");
  });

  it("has a writable overlay rootfs, DNS config and eth0 up", async () => {
    const r = await sh("echo hi > /etc/new-file && cat /etc/new-file /etc/resolv.conf && ip -4 addr show eth0 | grep -o '10.0.2.15/24' && hostname");
    expect(r.stdout.toString()).toBe("hi\nnameserver 10.0.2.3\n10.0.2.15/24\nvm1\n");
  });

  it("reaps orphaned zombies", async () => {
    await sh("(sleep 0.1 &) ; true");
    await Bun.sleep(1500);
    const r = await sh("cat /proc/[0-9]*/stat | grep -c ') Z ' || true");
    expect(r.stdout.toString().trim()).toBe("0");
  });

  it("answers ping and sets the clock", async () => {
    const ping = await vm.channel.call("ping");
    expect(ping.uptime_ms).toBeGreaterThan(0);
    await vm.channel.call("clock.set", { epoch_ms: 2_000_000_000_000 });
    const r = await runInGuest(vm.channel, { argv: ["date", "+%s"] });
    expect(Number(r.stdout.toString())).toBeGreaterThanOrEqual(2_000_000_000);
    await vm.channel.call("clock.set", { epoch_ms: Date.now() });
  });

  it("rejects unknown process ids and bad params with JSON-RPC errors", async () => {
    await expect(vm.channel.call("signal", { id: "nope", signal: "SIGTERM" })).rejects.toThrow(/no running process/);
    await expect(vm.channel.call("run", { id: "x", argv: [], env: {} })).rejects.toThrow(/argv/);
  });

  it("pauses and resumes", async () => {
    await vm.pause();
    await expect(vm.channel.call("ping", undefined, { timeoutMs: 300 })).rejects.toBeInstanceOf(ChannelTimeoutError);
    await vm.resume();
    expect((await vm.channel.call("ping")).uptime_ms).toBeGreaterThan(0);
  });

  it("snapshots and restores with processes still answering", async () => {
    await sh("echo before-snapshot > /root/marker");
    const snap = join(dir, "vm1.snap.zst");
    await vm.snapshot(snap);
    vm.kill();
    await vm.exited;
    const t0 = performance.now();
    vm = (await backend.boot({ ...spec("vm1"), restoreFrom: snap })) as QemuVm;
    const restoreMs = performance.now() - t0;
    const r = await sh("cat /root/marker");
    expect(r.stdout.toString()).toBe("before-snapshot\n");
    expect(restoreMs).toBeLessThan(30_000);
  }, 120_000);

  it("splits a snapshot into a sparse RAM file it maps copy-on-write at restore, and snapshots the restored VM again whole", async () => {
    // 16 MB of random bytes in tmpfs (guest RAM) and a process holding state in its memory.
    await sh("head -c 16777216 /dev/urandom > /tmp/blob && sha256sum /tmp/blob | cut -d' ' -f1 > /tmp/blob.sum");
    const sum = (await sh("cat /tmp/blob.sum")).stdout.toString().trim();
    expect(sum).toMatch(/^[0-9a-f]{64}$/);
    const first = join(dir, "split1.dev");
    await vm.snapshot(first);
    vm.kill();
    await vm.exited;
    const ram = join(dir, "split1.ram");
    const dev = statSync(first);
    const st = statSync(ram);
    expect(st.size).toBe(512 * 1024 * 1024); // the guest's RAM, page N at offset N * 4096
    expect(st.blocks * 512).toBeLessThan(st.size); // zero pages are holes
    expect(st.blocks * 512).toBeGreaterThan(16 * 1024 * 1024); // the blob is in it
    expect(dev.size).toBeLessThan(4 * 1024 * 1024); // device state and ROMs only
    expect(st.mode & 0o777).toBe(0o600);
    expect(dev.mode & 0o777).toBe(0o600);
    vm = (await backend.boot({ ...spec("vm1"), restoreFrom: first })) as QemuVm;
    expect(vm.bootPhases.migrationLoaded).toBeDefined();
    expect(readFileSync(`/proc/${vm.pid}/cmdline`, "utf8")).toContain(`mem-path=${ram},share=off`);
    expect((await sh("sha256sum /tmp/blob | cut -d' ' -f1")).stdout.toString().trim()).toBe(sum);
    // The restored VM's own snapshot holds all of its RAM: the first RAM file is gone before the next restore.
    await sh("echo after-restore >> /tmp/blob.sum");
    const second = join(dir, "split2.dev");
    await vm.snapshot(second);
    vm.kill();
    await vm.exited;
    rmSync(first);
    rmSync(ram);
    vm = (await backend.boot({ ...spec("vm1"), restoreFrom: second })) as QemuVm;
    expect((await sh("sha256sum /tmp/blob | cut -d' ' -f1; tail -n1 /tmp/blob.sum")).stdout.toString()).toBe(`${sum}\nafter-restore\n`);
    await sh("rm /tmp/blob");
  }, 180_000);

  it("refuses a split snapshot whose RAM file changed since (stale, so the caller cold boots)", async () => {
    const snap = join(dir, "split3.dev");
    await vm.snapshot(snap);
    vm.kill();
    await vm.exited;
    const ram = join(dir, "split3.ram");
    const fd = openSync(ram, "r+");
    writeSync(fd, Buffer.from("x"), 0, 1, 4096);
    closeSync(fd);
    await expect(backend.boot({ ...spec("vm1"), restoreFrom: snap })).rejects.toThrow(/memory file .*split3\.ram changed since the snapshot/);
    // The tests that follow get a cold-booted VM.
    vm = (await backend.boot(spec("vm1"))) as QemuVm;
  }, 180_000);

  it("powers off cleanly on stop()", async () => {
    const t0 = performance.now();
    await vm.stop(10_000);
    expect(await vm.exited).toBe(0);
    expect(performance.now() - t0).toBeLessThan(10_000);
    expect(readFileSync(vm.consoleLog, "utf8")).toContain("reboot");
  }, 30_000);
});

describe("a task VM", () => {
  it("powers off when its primary process exits, after delivering its output and exit", async () => {
    const vm2 = (await backend.boot(spec("vm2"))) as QemuVm;
    try {
      const out: Buffer[] = [];
      const p = await startGuestProcess(vm2.channel, {
        argv: ["/bin/sh", "-c", "seq 1 1000; exit 7"],
        primary: true,
        onStdout: (d) => out.push(Buffer.from(d)),
      });
      expect(await p.exited).toEqual({ code: 7 });
      expect(Buffer.concat(out).toString().split("\n").length).toBe(1001);
      expect(await Promise.race([vm2.exited, Bun.sleep(20_000).then(() => "still running")])).toBe(0);
    } finally {
      vm2.kill();
      await vm2.exited;
    }
  }, BOOT_TIMEOUT);
});

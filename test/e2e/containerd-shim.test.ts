/**
 * Issue 18 end to end (root, TCG): Debian's containerd, started by the test
 * with its own config and directories, runs containers in Aegis VMs through
 * `containerd-shim-aegis-v2` (runtime `io.containerd.aegis.v2`). A busybox
 * image made here is `ctr images import`ed; `ctr run` prints the guest
 * kernel and propagates exit code 7; a detached task is paused, resumed,
 * exec'd into (with and without a terminal) and killed; `ctr events` shows
 * the task events; nothing is left behind (QEMU processes, mounts,
 * instances). Two VMs in all, booted in parallel.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { kernelCacheDir } from "../../src/vmm/assets/kernel.ts";
import { TestHome } from "../helpers/aegis.ts";
import { TestContainerd } from "../helpers/containerd.ts";
import { busyboxArchive } from "../helpers/busybox-image.ts";
import { qemuPids } from "../helpers/qemu-pids.ts";

const T = 300_000;
const IMAGE = "localhost/aegis-shim-e2e:1";
const RUNTIME = "io.containerd.aegis.v2";
let home: TestHome;
let ctd: TestContainerd;
let events: ReturnType<typeof Bun.spawn>;
let eventText: Promise<string>;

beforeAll(async () => {
  home = new TestHome();
  ctd = new TestContainerd(home.dir);
  await ctd.start();
  events = ctd.spawnCtr(["events"]);
  eventText = new Response(events.stdout as ReadableStream<Uint8Array>).text();
  await busyboxArchive(join(ctd.dir, "image.tar"), join(ctd.dir, "image"), IMAGE, ["sh", "uname", "sleep", "cat", "echo", "tty", "true"]);
  const imported = await ctd.ctr(["images", "import", join(ctd.dir, "image.tar")]);
  expect(imported.stderr).toBe("");
  expect(imported.code).toBe(0);
}, T);

afterAll(async () => {
  events?.kill();
  await ctd?.[Symbol.asyncDispose]();
  await home?.[Symbol.asyncDispose]();
}, T);

describe("containerd-shim-aegis-v2 under containerd 1.6", () => {
  it(
    "runs containers in VMs: kernel, exit code, pause/resume, exec, a terminal, kill, events, and no leaks",
    async () => {
      // Two VMs boot in parallel: a foreground run, and a detached task for the lifecycle.
      const [run, detached] = await Promise.all([
        ctd.ctr(["run", "--rm", "--runtime", RUNTIME, IMAGE, "t1", "sh", "-c", "uname -r; exit 7"], { timeoutMs: T }),
        ctd.ctr(["run", "-d", "--runtime", RUNTIME, IMAGE, "t2", "sleep", "1000"], { timeoutMs: T }),
      ]);
      expect(run.stderr).toBe("");
      // The guest's kernel (the Debian package aegis setup unpacked), not the host's.
      const kernel = run.stdout.trim();
      expect(kernel).not.toBe(Bun.spawnSync(["uname", "-r"]).stdout.toString().trim());
      expect(existsSync(join(kernelCacheDir(), `linux-image-${kernel}`))).toBe(true);
      expect(run.code).toBe(7);
      expect(detached.stderr).toBe("");
      expect(detached.code).toBe(0);

      const state = async () => (await ctd.ctr(["task", "ls"])).stdout.split("\n").find((l) => l.startsWith("t2 "))?.trim().split(/\s+/)[2];
      expect(await state()).toBe("RUNNING");
      expect((await ctd.ctr(["task", "pause", "t2"])).code).toBe(0);
      expect(await state()).toBe("PAUSED");
      expect((await ctd.ctr(["task", "resume", "t2"])).code).toBe(0);
      expect(await state()).toBe("RUNNING");

      const exec = await ctd.ctr(["task", "exec", "--exec-id", "e1", "t2", "sh", "-c", "echo out; echo err >&2; exit 3"]);
      expect(exec.stdout).toBe("out\n");
      expect(exec.stderr).toBe("err\n");
      expect(exec.code).toBe(3);

      // -t needs a terminal on ctr's side: script(1) gives it one.
      const ctrCmd = `ctr --address ${ctd.socket} task exec -t --exec-id tty1 t2 sh -c 'tty; exit 0'`;
      const tty = Bun.spawnSync(["script", "-qec", ctrCmd, "/dev/null"], { env: ctd.env(), stdin: "ignore", timeout: 60_000 });
      expect(tty.stdout.toString()).toMatch(/\/dev\/pts\/\d+/);
      expect(tty.exitCode).toBe(0);

      expect((await ctd.ctr(["task", "kill", "-s", "SIGKILL", "t2"])).code).toBe(0);
      for (let i = 0; i < 100 && (await state()) !== "STOPPED"; i++) await Bun.sleep(100);
      expect(await state()).toBe("STOPPED");
      expect((await ctd.ctr(["task", "delete", "t2"])).code).toBe(0);
      expect((await ctd.ctr(["container", "delete", "t2"])).code).toBe(0);

      // Events: both tasks' lifecycles.
      await Bun.sleep(500);
      events.kill();
      const text = await eventText;
      for (const topic of ["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete", "/tasks/paused", "/tasks/resumed", "/tasks/exec-added", "/tasks/exec-started"]) {
        expect(text).toContain(topic);
      }
      expect(text).toMatch(/\/tasks\/exit.*"container_id":"t1".*"exit_status":7/);

      // Nothing leaked: no VM of this home, no mount under containerd's directory, no instance.
      for (let i = 0; i < 50 && qemuPids(home.dir).length > 0; i++) await Bun.sleep(100);
      expect(qemuPids(home.dir)).toEqual([]);
      expect(ctd.mounts()).toEqual([]);
      const list = await home.ok(["instance", "list", "--json"]);
      expect(JSON.parse(list.stdout)).toEqual([]);
    },
    T,
  );
});

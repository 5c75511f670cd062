/**
 * Issue 18, the OCI spec and resources end to end (root, TCG): Debian's
 * containerd started by the test runs one detached busybox task in an Aegis
 * VM with a memory limit, a CPU quota, an env var, a cwd and a read-only
 * bind mount from the host; execs see them (MemTotal sized by the limit,
 * nproc by the quota, the bind's file at its destination, read-only even
 * for guest root, the host file untouched), an exec as `1000:1000` runs as
 * that user, `ctr task metrics` prints the guest's memory, CPU and pids
 * (a paused task answers its last sample and stays paused), Update (ctr 1.6 has no command
 * for it: called on the shim's ttrpc socket as the CRI plugin would) keeps
 * the booted shape and refuses a new memory limit, and `ctr task
 * checkpoint` is refused with a clear message. One VM.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { TestHome } from "../helpers/aegis.ts";
import { TestContainerd } from "../helpers/containerd.ts";
import { busyboxArchive } from "../helpers/busybox-image.ts";
import { qemuPids } from "../helpers/qemu-pids.ts";
import { statePaths } from "../../src/paths.ts";
import { TtrpcClient } from "../../src/shim/ttrpc.ts";

const T = 300_000;
const IMAGE = "localhost/aegis-oci-e2e:1";
const RUNTIME = "io.containerd.aegis.v2";
const LIMIT = 256 * 1024 * 1024;
let home: TestHome;
let ctd: TestContainerd;

beforeAll(async () => {
  home = new TestHome();
  ctd = new TestContainerd(home.dir);
  await ctd.start();
  await busyboxArchive(join(ctd.dir, "image.tar"), join(ctd.dir, "image"), IMAGE, ["sh", "sleep", "cat", "echo", "id", "pwd", "nproc", "grep", "seq"]);
  const imported = await ctd.ctr(["images", "import", join(ctd.dir, "image.tar")]);
  expect(imported.code).toBe(0);
}, T);

afterAll(async () => {
  await ctd?.[Symbol.asyncDispose]();
  await home?.[Symbol.asyncDispose]();
}, T);

describe("the OCI spec and resources under containerd 1.6", () => {
  it(
    "honours env, cwd, user, memory and CPU sizing and a read-only bind mount; metrics; checkpoint refused",
    async () => {
      const share = join(ctd.dir, "share");
      mkdirSync(share);
      writeFileSync(join(share, "hello"), "from the host\n");
      const run = await ctd.ctr(
        ["run", "-d", "--runtime", RUNTIME, "--memory-limit", String(LIMIT), "--cpus", "2", "--env", "GREETING=bonjour", "--cwd", "/data", "--mount", `type=bind,src=${share},dst=/data,options=rbind:ro`, IMAGE, "t3", "sh", "-c", "id -u > /tmp/init-uid; pwd > /tmp/init-cwd; exec sleep 1000"],
        { timeoutMs: T },
      );
      expect(run.stderr).toBe("");
      expect(run.code).toBe(0);

      // The exec inherits the container's process (env, cwd), as runc's would.
      const look = await ctd.ctr(["task", "exec", "--exec-id", "e1", "t3", "sh", "-c", 'for i in $(seq 100); do [ -s /tmp/init-cwd ] && break; sleep 0.1; done; echo "$GREETING"; pwd; cat /tmp/init-uid /tmp/init-cwd; cat /data/hello; grep MemTotal /proc/meminfo; nproc']);
      expect(look.stderr).toBe("");
      expect(look.code).toBe(0);
      const lines = look.stdout.split("\n");
      expect(lines.slice(0, 5)).toEqual(["bonjour", "/data", "0", "/data", "from the host"]);
      // 256 MiB limit + 128 MiB guest overhead = a 384 MiB VM; the kernel keeps some for itself.
      const memKb = Number(/MemTotal:\s+(\d+) kB/.exec(look.stdout)?.[1]);
      expect(memKb).toBeGreaterThan(300 * 1024);
      expect(memKb).toBeLessThanOrEqual(384 * 1024);
      expect(lines[6]).toBe("2");

      // A numeric user:group exec runs as that user.
      const user = await ctd.ctr(["task", "exec", "--exec-id", "e2", "--user", "1000:1000", "t3", "sh", "-c", "id -u; id -g"]);
      expect(user.stdout).toBe("1000\n1000\n");
      // additionalGids (what the shim passes as `groups`, unit-tested in oci-resources.test.ts) reach the guest process.
      const instance = readFileSync(join(ctd.dir, "state/io.containerd.runtime.v2.task/default/t3/aegis-instance"), "utf8").trim();
      const groups = await fetch(`http://aegis/v1/instances/${instance}/exec`, { unix: statePaths(home.dir).socket, method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ command: ["id", "-G"], user: "1000:1000", groups: [44, 55] }) });
      const records = (await groups.text()).trim().split("\n").map((l) => JSON.parse(l) as { type: string; text?: string; data?: string });
      const out = records.filter((l) => l.type === "output").map((l) => l.text ?? Buffer.from(l.data ?? "", "base64").toString()).join("");
      expect(out.trim().split(" ").sort()).toEqual(["1000", "44", "55"]);
      // The ro bind is read-only in the guest, even for guest root, and the host file is untouched.
      const write = await ctd.ctr(["task", "exec", "--exec-id", "e3", "t3", "sh", "-c", "echo changed > /data/hello"]);
      expect(write.code).not.toBe(0);
      expect(write.stderr).toContain("Read-only file system");
      expect(readFileSync(join(share, "hello"), "utf8")).toBe("from the host\n");

      const metrics = await ctd.ctr(["task", "metrics", "t3"]);
      expect(metrics.stderr).toBe("");
      expect(metrics.code).toBe(0);
      const value = (name: string) => Number(new RegExp(`^${name.replace(".", "\\.")}\\s+(\\d+)`, "m").exec(metrics.stdout)?.[1]);
      expect(value("memory.usage_limit")).toBe(LIMIT);
      expect(value("memory.usage")).toBeGreaterThan(4 * 1024 * 1024);
      expect(value("memory.usage")).toBeLessThan(384 * 1024 * 1024);
      expect(value("cpu.usage_usec")).toBeGreaterThan(0);
      expect(value("pids.current")).toBeGreaterThanOrEqual(1);

      // Paused: the last sample, and the VM stays paused (not woken for metrics).
      expect((await ctd.ctr(["task", "pause", "t3"])).code).toBe(0);
      const paused = await ctd.ctr(["task", "metrics", "t3"]);
      expect(paused.code).toBe(0);
      expect(paused.stdout).toContain(`cpu.usage_usec        ${value("cpu.usage_usec")} `);
      expect((await ctd.ctr(["task", "ls"])).stdout).toMatch(/^t3\s+\S+\s+PAUSED/m);
      expect((await ctd.ctr(["task", "resume", "t3"])).code).toBe(0);

      // Update, as the CRI plugin sends it: LinuxResources JSON in an Any.
      const address = readFileSync(join(ctd.dir, "state/io.containerd.runtime.v2.task/default/t3/address"), "utf8").trim();
      const shim = await TtrpcClient.connect(address);
      const update = (resources: unknown) =>
        shim.call("containerd.task.v2.Task", "Update", "containerd.task.v2.UpdateTaskRequest", { id: "t3", resources: { type_url: "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources", value: Buffer.from(JSON.stringify(resources)) } }, "google.protobuf.Empty", { namespace: "default" });
      expect(await update({ memory: { limit: LIMIT }, cpu: { quota: 200_000, period: 100_000, shares: 1024 } })).toEqual({});
      await expect(update({ memory: { limit: 2 * LIMIT } })).rejects.toThrow(/cannot change memory after boot.*recreate the task/);
      await expect(update({ cpu: { quota: 400_000, period: 100_000 } })).rejects.toThrow(/cannot change their vCPUs/);
      shim.close();

      const checkpoint = await ctd.ctr(["task", "checkpoint", "t3"]);
      expect(checkpoint.code).not.toBe(0);
      expect(checkpoint.stderr).toContain("cannot be snapshotted");

      expect((await ctd.ctr(["task", "kill", "-s", "SIGKILL", "t3"])).code).toBe(0);
      for (let i = 0; i < 100; i++) {
        const ls = await ctd.ctr(["task", "ls"]);
        if (ls.stdout.includes("STOPPED")) break;
        await Bun.sleep(100);
      }
      expect((await ctd.ctr(["task", "delete", "t3"])).code).toBe(0);
      expect((await ctd.ctr(["container", "delete", "t3"])).code).toBe(0);
      for (let i = 0; i < 50 && qemuPids(home.dir).length > 0; i++) await Bun.sleep(100);
      expect(qemuPids(home.dir)).toEqual([]);
      expect(ctd.mounts()).toEqual([]);
    },
    T,
  );
});

/**
 * Issue 18, the CRI path, end to end (root, TCG): Debian's containerd,
 * started by the test with its CRI plugin, a runtime handler `aegis`
 * (`io.containerd.aegis.v2`), CNI from containernetworking-plugins
 * (`bridge` + `host-local`, a 10.x subnet, configs in the test's
 * directory) and a sandbox image made here and imported (nothing pulled).
 * A CRI client of ours (gRPC, test/helpers/cri/client.ts) runs a pod: the
 * pod is ONE VM (one QEMU process for the sandbox and its container), the
 * container's HTTP server (busybox httpd) runs in its own rootfs inside
 * it, ExecSync reaches it, and the server answers at the pod IP from the
 * host. Then everything is stopped and removed, and nothing is left: no
 * QEMU process, mount, aegisd instance, network namespace or bridge port.
 *
 * The pod IP check needs aegisd's `netns_path` (the VM's network is the
 * pod's namespace); it is asserted last so that a failure there still
 * lets every other check report.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { TestHome } from "../helpers/aegis.ts";
import { TestContainerd } from "../helpers/containerd.ts";
import { CriClient, type CriMsg } from "../helpers/cri/client.ts";
import { busyboxArchive } from "../helpers/busybox-image.ts";
import { qemuPids } from "../helpers/qemu-pids.ts";

const T = 600_000;
const PAUSE_IMAGE = "localhost/aegis-cri-pause:1";
const APP_IMAGE = "localhost/aegis-cri-app:1";
const BRIDGE = `acri${process.pid % 100000}`;
const SUBNET = `10.213.${process.pid % 250}`;
const PAGE = "hello from a pod VM\n";
let home: TestHome;
let ctd: TestContainerd;
let cri: CriClient;
let netnsBefore: Set<string>;

function netnsList(): string[] {
  return existsSync("/var/run/netns") ? readdirSync("/var/run/netns") : [];
}

const CRI_APPLETS = ["sh", "sleep", "cat", "echo", "httpd", "hostname", "ls"];

function podConfig(logDir: string): CriMsg {
  return { metadata: { name: "web", uid: `uid-${process.pid}`, namespace: "default", attempt: 0 }, hostname: "web", log_directory: logDir, linux: {}, annotations: { "io.aegis.pod.memory-mb": "640" } };
}

beforeAll(async () => {
  netnsBefore = new Set(netnsList());
  home = new TestHome();
  const base = `${home.dir}-cri`;
  const cniDir = join(base, "cni");
  mkdirSync(cniDir, { recursive: true });
  // host-local keeps its leases in the test's directory, not /var/lib/cni.
  const net = { cniVersion: "0.4.0", name: "aegis-cri-e2e", plugins: [{ type: "bridge", bridge: BRIDGE, isGateway: true, ipMasq: false, ipam: { type: "host-local", ranges: [[{ subnet: `${SUBNET}.0/24` }]], dataDir: join(base, "ipam") } }] };
  writeFileSync(join(cniDir, "10-aegis-cri-e2e.conflist"), JSON.stringify(net));
  ctd = new TestContainerd(home.dir, { sandboxImage: PAUSE_IMAGE, cniConfDir: cniDir });
  await ctd.start();
  // The sandbox's program keeps the pod alive until it is killed (what the pause image does).
  await busyboxArchive(join(ctd.dir, "pause.tar"), join(ctd.dir, "pause"), PAUSE_IMAGE, CRI_APPLETS, { cmd: ["/bin/sleep", "2147483647"] });
  await busyboxArchive(join(ctd.dir, "app.tar"), join(ctd.dir, "app"), APP_IMAGE, CRI_APPLETS, { cmd: ["/bin/sh"], extra: [
    { path: "www/", type: "Directory" },
    { path: "www/index.html", content: PAGE },
  ] });
  for (const f of ["pause.tar", "app.tar"]) {
    const imported = await ctd.ctr(["-n", "k8s.io", "images", "import", join(ctd.dir, f)]);
    expect(imported.stderr).toBe("");
    expect(imported.code).toBe(0);
  }
  cri = new CriClient(ctd.socket);
}, T);

afterAll(async () => {
  // After a failure mid-test, remove the pods through CRI, so containerd tears their netns down.
  const left = cri ? (((await cri.call("ListPodSandbox", {}).catch(() => ({ items: [] }))).items as CriMsg[]) ?? []) : [];
  for (const pod of left) {
    await cri.call("StopPodSandbox", { pod_sandbox_id: pod.id }, T).catch((err: unknown) => process.stderr.write(`cleanup: ${(err as Error).message}\n`));
    await cri.call("RemovePodSandbox", { pod_sandbox_id: pod.id }, T).catch((err: unknown) => process.stderr.write(`cleanup: ${(err as Error).message}\n`));
  }
  cri?.close();
  await ctd?.[Symbol.asyncDispose]();
  await home?.[Symbol.asyncDispose]();
  Bun.spawnSync(["ip", "link", "delete", BRIDGE], { stderr: "ignore" });
  Bun.spawnSync(["rm", "-rf", `${home?.dir}-cri`]);
}, T);

describe("the CRI API with runtime handler aegis (containerd 1.6)", () => {
  it(
    "runs a pod as one VM: sandbox, an HTTP server container, ExecSync, the pod IP, stop and remove, no leaks",
    async () => {
      const version = await cri.call("Version", { version: "v1" });
      expect(version.runtime_name).toBe("containerd");
      expect(version.runtime_api_version).toBe("v1");

      const logDir = join(ctd.dir, "pod-logs");
      mkdirSync(logDir, { recursive: true });
      const sandboxConfig = podConfig(logDir);
      const t0 = performance.now();
      const run = await cri.call("RunPodSandbox", { config: sandboxConfig, runtime_handler: "aegis" }, T);
      const podId = String(run.pod_sandbox_id);
      const tPod = performance.now();
      expect(podId).toMatch(/^[0-9a-f]{64}$/);

      const podStatus = (await cri.call("PodSandboxStatus", { pod_sandbox_id: podId })).status as CriMsg;
      expect(podStatus.state).toBe("SANDBOX_READY");
      expect(podStatus.runtime_handler).toBe("aegis");
      const podIp = String((podStatus.network as CriMsg).ip);
      expect(podIp.startsWith(`${SUBNET}.`)).toBe(true);
      // The sandbox is one VM.
      expect(qemuPids(home.dir).length).toBe(1);

      const created = await cri.call("CreateContainer", {
        pod_sandbox_id: podId,
        config: { metadata: { name: "httpd", attempt: 0 }, image: { image: APP_IMAGE }, command: ["/bin/httpd", "-f", "-p", "8080", "-h", "/www"], log_path: "httpd.log", linux: {} },
        sandbox_config: sandboxConfig,
      }, T);
      const ctrId = String(created.container_id);
      await cri.call("StartContainer", { container_id: ctrId }, T);
      const tCtr = performance.now();
      const ctrStatus = (await cri.call("ContainerStatus", { container_id: ctrId })).status as CriMsg;
      expect(ctrStatus.state).toBe("CONTAINER_RUNNING");
      // The container runs inside the pod's VM: still one QEMU process.
      expect(qemuPids(home.dir).length).toBe(1);

      // ExecSync runs in the container's own rootfs (the app image's /www, absent from the sandbox image).
      const exec = await cri.call("ExecSync", { container_id: ctrId, cmd: ["/bin/cat", "/www/index.html"], timeout: 60 }, 120_000);
      expect(Buffer.from(exec.stdout as Uint8Array).toString()).toBe(PAGE);
      expect(exec.exit_code).toBe(0);
      const tExec = performance.now();
      process.stderr.write(`cri: RunPodSandbox ${((tPod - t0) / 1000).toFixed(1)} s, CreateContainer+StartContainer ${((tCtr - tPod) / 1000).toFixed(2)} s, first ExecSync ${((tExec - tCtr) / 1000).toFixed(2)} s\n`);
      // The pod VM has the size its annotation asks for (640 MiB: MemTotal a little less).
      const meminfo = await cri.call("ExecSync", { container_id: ctrId, cmd: ["/bin/sh", "-c", "grep MemTotal /proc/meminfo"], timeout: 60 }, 120_000);
      const memTotalMb = Number(/MemTotal:\s+(\d+) kB/.exec(Buffer.from(meminfo.stdout as Uint8Array).toString())?.[1]) / 1024;
      expect(memTotalMb).toBeGreaterThan(500);
      expect(memTotalMb).toBeLessThanOrEqual(640);
      // A container bigger than its pod VM (which cannot grow) is refused when its task is made
      // (StartContainer: CRI's CreateContainer only records it), saying what to set.
      const big = await cri.call("CreateContainer", {
        pod_sandbox_id: podId,
        config: { metadata: { name: "big", attempt: 0 }, image: { image: PAUSE_IMAGE }, command: ["/bin/sleep", "1000"], log_path: "big.log", linux: { resources: { memory_limit_in_bytes: 2048 * 1024 * 1024 } } },
        sandbox_config: sandboxConfig,
      }, T);
      const tooBig = await cri.call("StartContainer", { container_id: String(big.container_id) }, T).then(
        () => "started",
        (err: unknown) => (err as Error).message,
      );
      await cri.call("RemoveContainer", { container_id: String(big.container_id) }, T);
      expect(tooBig).toContain("io.aegis.pod.memory-mb");
      expect(tooBig).toContain("its pod VM has 640 MiB");
      const failing = await cri.call("ExecSync", { container_id: ctrId, cmd: ["/bin/sh", "-c", "echo oops >&2; exit 4"], timeout: 60 }, 120_000);
      expect(Buffer.from(failing.stderr as Uint8Array).toString()).toBe("oops\n");
      expect(failing.exit_code).toBe(4);
      // The server listens inside the VM (a busybox wget from the container itself).
      const local = await cri.call("ExecSync", { container_id: ctrId, cmd: ["/bin/busybox", "wget", "-q", "-O", "-", "http://127.0.0.1:8080/"], timeout: 60 }, 120_000);
      expect(Buffer.from(local.stdout as Uint8Array).toString()).toBe(PAGE);

      // A write lands in the VM's overlay, never in the container's rootfs on the host.
      const write = await cri.call("ExecSync", { container_id: ctrId, cmd: ["/bin/sh", "-c", "echo new > /www/new.txt && cat /www/new.txt"], timeout: 60 }, 120_000);
      expect(Buffer.from(write.stdout as Uint8Array).toString()).toBe("new\n");
      const hostRootfs = join(ctd.dir, "state", "io.containerd.runtime.v2.task", "k8s.io", ctrId, "rootfs");
      expect(existsSync(join(hostRootfs, "www", "index.html"))).toBe(true);
      expect(existsSync(join(hostRootfs, "www", "new.txt"))).toBe(false);

      // A second container of the pod: same VM, its own rootfs (the pause image has no /www).
      const second = await cri.call("CreateContainer", {
        pod_sandbox_id: podId,
        config: { metadata: { name: "side", attempt: 0 }, image: { image: PAUSE_IMAGE }, command: ["/bin/sleep", "1000"], log_path: "side.log", linux: {} },
        sandbox_config: sandboxConfig,
      }, T);
      const sideId = String(second.container_id);
      await cri.call("StartContainer", { container_id: sideId }, T);
      expect(qemuPids(home.dir).length).toBe(1);
      const side = await cri.call("ExecSync", { container_id: sideId, cmd: ["/bin/sh", "-c", "ls /www 2>&1; exit 0"], timeout: 60 }, 120_000);
      expect(Buffer.from(side.stdout as Uint8Array).toString()).toContain("No such file or directory");

      // From the host, at the pod IP (needs the VM's network to be the pod's namespace). Asserted last.
      const fromHost = await fetch(`http://${podIp}:8080/`, { signal: AbortSignal.timeout(15_000) }).then(
        async (r) => `${r.status} ${await r.text()}`,
        (err: unknown) => `unreachable: ${(err as Error).message}`,
      );

      await cri.call("StopContainer", { container_id: sideId, timeout: 10 }, T);
      await cri.call("RemoveContainer", { container_id: sideId }, T);
      await cri.call("StopContainer", { container_id: ctrId, timeout: 10 }, T);
      expect(((await cri.call("ContainerStatus", { container_id: ctrId })).status as CriMsg).state).toBe("CONTAINER_EXITED");
      await cri.call("RemoveContainer", { container_id: ctrId }, T);
      await cri.call("StopPodSandbox", { pod_sandbox_id: podId }, T);
      await cri.call("RemovePodSandbox", { pod_sandbox_id: podId }, T);
      const pods = await cri.call("ListPodSandbox", {});
      expect(pods.items).toEqual([]);

      // Nothing leaked: VMs, mounts under containerd's directories, aegisd instances, netns, bridge ports.
      for (let i = 0; i < 100 && qemuPids(home.dir).length > 0; i++) await Bun.sleep(100);
      expect(qemuPids(home.dir)).toEqual([]);
      // The pod's one shim exited once its last task was shut down.
      for (let i = 0; i < 100 && ctd.shimPids().length > 0; i++) await Bun.sleep(100);
      expect(ctd.shimPids()).toEqual([]);
      expect(ctd.mounts()).toEqual([]);
      const list = await home.ok(["instance", "list", "--json"]);
      expect(JSON.parse(list.stdout)).toEqual([]);
      // containerd names the pods' namespaces cni-*; other tests on the machine make their own.
      expect(netnsList().filter((n) => n.startsWith("cni-") && !netnsBefore.has(n))).toEqual([]);
      const ports = Bun.spawnSync(["ip", "-o", "link", "show", "master", BRIDGE]).stdout.toString().trim();
      expect(ports).toBe("");

      expect(fromHost).toBe(`200 ${PAGE}`);
    },
    T,
  );
});

/**
 * @module shim/update
 * The task's Update (`ctr task update`, CRI UpdateContainerResources):
 * what a VM can and cannot change after boot.
 *
 * Rule. The spec's memory limit and CPU quota are the VM's shape (see
 * oci-spec.ts vmShape), and QEMU gives the guest that memory and those
 * vCPUs at boot: neither can grow nor shrink afterwards in this version
 * (no memory hotplug or balloon, no vCPU hotplug). So an update is
 * accepted when it leaves the shape as booted (the same limits, or none
 * given: nothing to do), and refused with FailedPrecondition naming the
 * value otherwise ("recreate the task"). Other LinuxResources fields
 * (pids, blockIO, hugepages, devices, unified) are not enforced inside the
 * guest and are refused as InvalidArgument rather than silently dropped.
 */
import { z } from "zod";
import { vmShape } from "./oci-spec.ts";
import { Code, TtrpcError } from "./ttrpc.ts";

/** The LinuxResources fields Update looks at (the JSON containerd puts in the Any). */
const LinuxResources = z
  .object({
    memory: z.object({ limit: z.number().int().optional() }).passthrough().optional(),
    cpu: z.object({ quota: z.number().int().optional(), period: z.number().int().optional() }).passthrough().optional(),
  })
  .passthrough();

/** Fields that do not map onto a VM and must not be silently ignored when set. */
const UNSUPPORTED = ["pids", "blockIO", "hugepageLimits", "rdma", "unified"] as const;

/** Check an update against the shape the VM booted with; throws a TtrpcError when it cannot apply. */
export function checkUpdate(resourcesJson: Uint8Array, booted: { memory_mb?: number; vcpus?: number }): void {
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(resourcesJson).toString("utf8") || "{}");
  } catch (err) {
    throw new TtrpcError(Code.invalidArgument, `the update's resources are not valid JSON: ${(err as Error).message}`);
  }
  const r = LinuxResources.safeParse(raw);
  if (!r.success) throw new TtrpcError(Code.invalidArgument, `the update's resources are not LinuxResources: ${r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  const res = r.data;
  for (const f of UNSUPPORTED) {
    const v = (res as Record<string, unknown>)[f];
    if (v !== undefined && v !== null && !(typeof v === "object" && Object.keys(v).length === 0)) throw new TtrpcError(Code.invalidArgument, `resources.${f} cannot be applied by the aegis runtime (the VM is the container's boundary; only memory and CPU size it)`);
  }
  const wanted = vmShape({ process: { args: ["-"] }, linux: { resources: { memory: res.memory, cpu: res.cpu } } });
  if (wanted.memory_mb !== undefined && wanted.memory_mb !== booted.memory_mb) {
    throw new TtrpcError(Code.failedPrecondition, `aegis VMs cannot change memory after boot: the task's VM was sized for ${booted.memory_mb === undefined ? "the default memory" : `${booted.memory_mb} MiB`}, the update asks for a ${res.memory!.limit} byte limit (${wanted.memory_mb} MiB); recreate the task with the new limit`);
  }
  if (wanted.vcpus !== undefined && wanted.vcpus !== booted.vcpus) {
    throw new TtrpcError(Code.failedPrecondition, `aegis VMs cannot change their vCPUs after boot: the task's VM has ${booted.vcpus ?? "the default number of"} vCPU(s), the update's CPU quota asks for ${wanted.vcpus}; recreate the task with the new quota`);
  }
}

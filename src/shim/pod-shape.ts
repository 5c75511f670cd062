/**
 * @module shim/pod-shape
 * The size of a pod's VM, and the check that a container fits in it.
 *
 * A pod is one VM booted with the sandbox (shim/sandbox.ts), before any of
 * its containers exists, and QEMU here has no memory or CPU hotplug: the VM
 * cannot grow when a container arrives (Kata grows its VM by hotplug).
 * containerd 1.6's CRI plugin puts no pod-level resources in the sandbox's
 * spec, so the pod's size comes from pod annotations, which containerd
 * passes to the runtime when the runtime's `pod_annotations` lists them
 * (docs/kubernetes.md: `pod_annotations = ["io.aegis.*"]`):
 *   - `io.aegis.pod.memory-mb`: the VM's memory in MiB (256-65536);
 *   - `io.aegis.pod.vcpus`: its vCPUs (1-64).
 * Without them the sandbox spec's own limits size it (shim/oci-spec.ts
 * vmShape), else aegisd's defaults (512 MiB, 1 vCPU).
 *
 * A container whose memory limit (plus the guest's own overhead) or CPU
 * quota exceeds the pod VM is refused at CreateContainer with the figures
 * and the annotation to set, instead of being started into a VM where it
 * would be OOM-killed or starved. Limits within the VM are not enforced
 * per container (no cgroups in the guest): the VM is the boundary.
 */
import { GUEST_OVERHEAD_MB, type OciSpec, vmShape } from "./oci-spec.ts";

export const POD_MEMORY_ANNOTATION = "io.aegis.pod.memory-mb";
export const POD_VCPUS_ANNOTATION = "io.aegis.pod.vcpus";
/** aegisd's defaults for a VM of no stated size (src/daemon/instances/spec.ts). */
const DEFAULT_MEMORY_MB = 512;
const DEFAULT_VCPUS = 1;
const MIB = 1024 * 1024;

export type VmShape = { memory_mb?: number; vcpus?: number };

function intAnnotation(annotations: Record<string, string>, key: string, min: number, max: number): number | undefined {
  const raw = annotations[key];
  if (raw === undefined) return undefined;
  if (!/^\d+$/.test(raw.trim()) || Number(raw) < min || Number(raw) > max) {
    throw new Error(`pod annotation ${key}=${JSON.stringify(raw)} is not a whole number from ${min} to ${max}`);
  }
  return Number(raw);
}

/**
 * The pod VM's shape from the sandbox's annotations and spec.
 * @throws Error naming the annotation when one is not a usable number
 */
export function podShape(annotations: Record<string, string>, sandboxSpec: OciSpec): VmShape {
  const base = vmShape(sandboxSpec);
  const memory = intAnnotation(annotations, POD_MEMORY_ANNOTATION, 256, 65536);
  const vcpus = intAnnotation(annotations, POD_VCPUS_ANNOTATION, 1, 64);
  return { ...base, ...(memory !== undefined ? { memory_mb: memory } : {}), ...(vcpus !== undefined ? { vcpus } : {}) };
}

/** Why container `id` (its spec `spec`) does not fit the pod VM of shape `pod`, or null when it fits. */
export function misfit(id: string, spec: OciSpec, pod: VmShape): string | null {
  const memoryMb = pod.memory_mb ?? DEFAULT_MEMORY_MB;
  const vcpus = pod.vcpus ?? DEFAULT_VCPUS;
  const limit = spec.linux?.resources?.memory?.limit;
  if (limit !== undefined && limit > 0) {
    const needMb = Math.ceil(limit / MIB) + GUEST_OVERHEAD_MB;
    if (needMb > memoryMb) {
      return `container ${id} has a memory limit of ${Math.ceil(limit / MIB)} MiB, which with the guest's ${GUEST_OVERHEAD_MB} MiB needs ${needMb} MiB, but its pod VM has ${memoryMb} MiB and cannot grow; give the pod the annotation ${POD_MEMORY_ANNOTATION}: "${needMb}" (or more), allowed by the runtime's pod_annotations`;
    }
  }
  const cpu = spec.linux?.resources?.cpu;
  if (cpu?.quota !== undefined && cpu.period !== undefined && cpu.quota > 0 && cpu.period > 0) {
    const need = Math.ceil(cpu.quota / cpu.period);
    if (need > vcpus) {
      return `container ${id} has a CPU limit of ${(cpu.quota / cpu.period).toFixed(2)} CPUs but its pod VM has ${vcpus} vCPU${vcpus === 1 ? "" : "s"} and cannot grow; give the pod the annotation ${POD_VCPUS_ANNOTATION}: "${need}" (or more), allowed by the runtime's pod_annotations`;
    }
  }
  return null;
}

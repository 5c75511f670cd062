import { describe, expect, it } from "bun:test";
import type { OciSpec } from "../../../src/shim/oci-spec.ts";
import { misfit, podShape, POD_MEMORY_ANNOTATION, POD_VCPUS_ANNOTATION } from "../../../src/shim/pod-shape.ts";

const MIB = 1024 * 1024;
const spec = (memoryMb?: number, cpus?: number): OciSpec => ({
  process: { args: ["sh"] },
  linux: { resources: { ...(memoryMb ? { memory: { limit: memoryMb * MIB } } : {}), ...(cpus ? { cpu: { quota: cpus * 100_000, period: 100_000 } } : {}) } },
});

describe("pod VM shape", () => {
  it("takes the pod annotations over the sandbox spec, and the spec (or aegisd's defaults) without them", () => {
    expect(podShape({ [POD_MEMORY_ANNOTATION]: "1024", [POD_VCPUS_ANNOTATION]: "2" }, spec(100, 1))).toEqual({ memory_mb: 1024, vcpus: 2 });
    expect(podShape({}, spec(300))).toEqual({ memory_mb: 428 });
    expect(podShape({}, spec())).toEqual({});
  });

  it("refuses an annotation that is not a whole number in range, naming it", () => {
    expect(() => podShape({ [POD_MEMORY_ANNOTATION]: "1g" }, spec())).toThrow(/io\.aegis\.pod\.memory-mb="1g" is not a whole number from 256 to 65536/);
    expect(() => podShape({ [POD_MEMORY_ANNOTATION]: "100" }, spec())).toThrow(/memory-mb/);
    expect(() => podShape({ [POD_VCPUS_ANNOTATION]: "0" }, spec())).toThrow(/io\.aegis\.pod\.vcpus="0" is not a whole number from 1 to 64/);
  });

  it("refuses a container bigger than its pod VM, naming the figures and the annotation; one that fits passes", () => {
    expect(misfit("c1", spec(256), { memory_mb: 512 })).toBeNull();
    expect(misfit("c1", spec(), {})).toBeNull();
    const big = misfit("c1", spec(2048), { memory_mb: 640 });
    expect(big).toContain("container c1 has a memory limit of 2048 MiB");
    expect(big).toContain("its pod VM has 640 MiB");
    expect(big).toContain(`${POD_MEMORY_ANNOTATION}: "2176"`);
    // aegisd's default size when the pod states none.
    expect(misfit("c1", spec(600), {})).toContain("its pod VM has 512 MiB");
    expect(misfit("c2", spec(undefined, 3), { vcpus: 2 })).toContain(`${POD_VCPUS_ANNOTATION}: "3"`);
    expect(misfit("c2", spec(undefined, 2), { vcpus: 2 })).toBeNull();
  });
});

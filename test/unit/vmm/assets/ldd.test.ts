import { describe, expect, it } from "bun:test";
import { parseLdd } from "../../../../src/vmm/assets/ldd.ts";
import { elfIsDynamic } from "../../../../src/vmm/assets/busybox.ts";
import { parseAptDepends } from "../../../../src/vmm/assets/debian-package.ts";
import { readFileSync } from "node:fs";

describe("ldd parsing", () => {
  it("collects libraries and the loader, skipping the vdso", () => {
    const text = `\tlinux-vdso.so.1 (0x00007ffd)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0a)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f0b)\n\tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f0c)\n`;
    expect(parseLdd(text)).toEqual(["/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/libm.so.6"]);
  });

  it("refuses a binary with a missing library", () => {
    expect(() => parseLdd("\tlibfoo.so.1 => not found\n")).toThrow(/missing shared library/);
  });
});

describe("static busybox check", () => {
  it("tells a dynamic ELF from a static one", () => {
    expect(elfIsDynamic(readFileSync(process.execPath))).toBe(true);
    expect(elfIsDynamic(readFileSync("/bin/busybox"))).toBe(false);
  });
});

describe("kernel package resolution", () => {
  it("finds the concrete cloud kernel package in apt-cache depends output", () => {
    const text = "linux-image-cloud-amd64\n  Depends: linux-image-6.1.0-56-cloud-amd64\n";
    expect(parseAptDepends(text, "linux-image-")).toBe("linux-image-6.1.0-56-cloud-amd64");
    expect(parseAptDepends("nothing\n", "linux-image-")).toBeUndefined();
  });
});

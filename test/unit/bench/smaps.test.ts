import { describe, expect, it } from "bun:test";
import { ussBreakdown } from "../../../bench/_smaps.ts";

/** One smaps entry with the given private pages (kB). */
function entry(range: string, perms: string, name: string, clean: number, dirty: number): string {
  return [
    `${range} ${perms} 00000000 fe:00 123${name ? `                    ${name}` : ""}`,
    `Size:              9999 kB`,
    `Rss:               ${clean + dirty + 7} kB`,
    `Shared_Clean:         7 kB`,
    `Private_Clean:     ${clean} kB`,
    `Private_Dirty:     ${dirty} kB`,
    `VmFlags: rd wr mr mw me ac`,
  ].join("\n");
}

describe("ussBreakdown", () => {
  it("splits a paused QEMU's private pages into guest RAM, TCG cache, binaries and other anonymous memory", () => {
    const text = [
      entry("55afc1093000-55afc149a000", "r--p", "/usr/bin/qemu-system-x86_64", 1024, 0),
      entry("55afc8955000-55afc948d000", "rw-p", "[heap]", 0, 5120),
      // A template clone's RAM: the .ram file mapped copy-on-write.
      entry("7f82dffff000-7f82fffff000", "rw-p", "/h/templates/k.ram", 512, 14336),
      entry("7f830447c000-7f8305200000", "rw-p", "", 0, 2048),
      entry("7f8305600000-7f83075ff000", "rwxp", "", 0, 32768),
      entry("7f8308800000-7f83088c5000", "r--p", "/usr/lib/x86_64-linux-gnu/libc.so.6", 0, 1024),
      // Anonymous guest RAM: a mapping of exactly the guest's size (512 MiB).
      entry("7f9000000000-7f9020000000", "rw-p", "", 0, 4096),
      entry("7fa000000000-7fa000100000", "rw-s", "/memfd:mem0 (deleted)", 0, 1024),
    ].join("\n");
    expect(ussBreakdown(text, 512)).toEqual({ guestRam: (512 + 14336 + 4096 + 1024) / 1024, tcgCode: 32, binaries: 2, otherAnon: 7 });
  });
});

import { afterAll, describe, expect, it } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { elfInterpreter, injectionPlan, mappedLibraries, resolveInRoot } from "../../../../guest/harness/inject.ts";
import { resolveInjected } from "../../../../guest/harness/processes.ts";

const tmp = mkdtempSync(join(tmpdir(), "aegis-inject-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A rootfs tree under tmp: `files` maps paths to content, `links` to symlink targets. */
function tree(name: string, files: Record<string, string>, links: Record<string, string> = {}): string {
  const root = join(tmp, name);
  mkdirSync(root, { recursive: true });
  for (const [p, text] of Object.entries(files)) {
    mkdirSync(join(root, p, ".."), { recursive: true });
    writeFileSync(join(root, p), text);
  }
  for (const [p, target] of Object.entries(links)) {
    mkdirSync(join(root, p, ".."), { recursive: true });
    symlinkSync(target, join(root, p));
  }
  return root;
}

const LOADER = "/lib64/ld-linux-x86-64.so.2";
const LIBS = ["/lib/x86_64-linux-gnu/libc.so.6", "/lib/x86_64-linux-gnu/libm.so.6"];

describe("binary injection", () => {
  it("reads the ELF interpreter of a dynamic binary and none of a static one", () => {
    const elf = Buffer.alloc(4096);
    elf.writeUInt32BE(0x7f454c46, 0);
    elf[4] = 2;
    elf[5] = 1;
    elf.writeBigUInt64LE(64n, 32); // e_phoff
    elf.writeUInt16LE(56, 54); // e_phentsize
    elf.writeUInt16LE(2, 56); // e_phnum
    elf.writeUInt32LE(6, 64); // PT_PHDR
    elf.writeUInt32LE(3, 120); // PT_INTERP
    elf.writeBigUInt64LE(512n, 128); // p_offset
    elf.writeBigUInt64LE(BigInt(LOADER.length + 1), 152); // p_filesz
    elf.write(`${LOADER}\0`, 512, "latin1");
    expect(elfInterpreter(elf)).toBe(LOADER);
    elf.writeUInt16LE(1, 56);
    expect(elfInterpreter(elf)).toBeUndefined();
    expect(() => elfInterpreter(Buffer.from("#!/bin/sh\n".padEnd(64)))).toThrow(/not an ELF/);
  });

  it("reads the interpreter of the host's busybox-static as none", () => {
    expect(elfInterpreter(readFileSync("/bin/busybox").subarray(0, 4096))).toBeUndefined();
  });

  it("lists the shared libraries mapped into a process, without the loader, the binary or anonymous maps", () => {
    const maps = [
      "00200000-00201000 r--p 00000000 fd:01 12 /tools/aegis",
      "7f0000000000-7f0000001000 r--p 00000000 00:01 34 /lib/x86_64-linux-gnu/libc.so.6",
      "7f0000001000-7f0000002000 r-xp 00001000 00:01 34 /lib/x86_64-linux-gnu/libc.so.6",
      "7f0000002000-7f0000003000 r--p 00000000 00:01 35 /lib/x86_64-linux-gnu/libpthread.so.0",
      "7f0000003000-7f0000004000 rw-p 00000000 00:00 0 ",
      "7f0000004000-7f0000005000 rw-p 00000000 00:00 0 [heap]",
      "7f0000005000-7f0000006000 rw-s 00000000 00:05 9 /memfd:jit (deleted)",
      `7f0000006000-7f0000007000 r--p 00000000 00:01 36 ${LOADER}`,
    ].join("\n");
    expect(mappedLibraries(maps, [LOADER, "/tools/aegis"])).toEqual(["/lib/x86_64-linux-gnu/libc.so.6", "/lib/x86_64-linux-gnu/libpthread.so.0"]);
  });

  it("resolves paths inside the root like a chrooted process: absolute links re-rooted, .. stops at the root", () => {
    const root = tree("resolve", { "usr/lib/libz.so.1": "z" }, { lib: "usr/lib", lib64: "/usr/lib64", "usr/bin/escape": "../../../../etc" });
    expect(resolveInRoot(root, "/lib/libz.so.1")).toEqual({ path: `${root}/usr/lib/libz.so.1`, found: { type: "file", size: 1 }, parentFound: true });
    expect(resolveInRoot(root, "/lib64/ld.so")).toEqual({ path: `${root}/usr/lib64/ld.so`, found: undefined, parentFound: false });
    expect(resolveInRoot(root, "/usr/bin/escape/passwd").path).toBe(`${root}/etc/passwd`);
    expect(resolveInRoot(root, "/lib/x86_64-linux-gnu/libc.so.6")).toEqual({ path: `${root}/usr/lib/x86_64-linux-gnu/libc.so.6`, found: undefined, parentFound: false });
    expect(resolveInRoot(root, "/usr/lib/new.so")).toEqual({ path: `${root}/usr/lib/new.so`, found: undefined, parentFound: true });
  });

  it("refuses a symlink loop", () => {
    const root = tree("loop", {}, { a: "b", b: "a" });
    expect(() => resolveInRoot(root, "/a/x")).toThrow(/too many symbolic links/);
  });

  it("binds the binaries and, for an image without glibc (busybox, musl), the loader and libraries", () => {
    const root = tree("musl", { "bin/busybox": "bb", "lib/ld-musl-x86_64.so.1": "musl" });
    expect(injectionPlan(root, "/tools/aegis", LOADER, LIBS)).toEqual([
      { source: "/tools/aegis", target: `${root}/usr/bin/aegis-agent`, unlink: false, create: true, createParent: true },
      { source: "/tools/aegis", target: `${root}/usr/bin/aegis-harness`, unlink: false, create: true, createParent: true },
      { source: "/tools/aegis", target: `${root}/usr/bin/aegis-mcp-guest`, unlink: false, create: true, createParent: true },
      { source: LOADER, target: `${root}${LOADER}`, unlink: false, create: true, createParent: true },
      { source: LIBS[0]!, target: `${root}${LIBS[0]}`, unlink: false, create: true, createParent: true },
      { source: LIBS[1]!, target: `${root}${LIBS[1]}`, unlink: false, create: true, createParent: true },
    ]);
  });

  it("leaves a glibc image's own loader and libraries alone", () => {
    const root = tree("glibc", { "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2": "ld", "usr/lib/x86_64-linux-gnu/libc.so.6": "libc" }, { lib: "usr/lib", lib64: "usr/lib/x86_64-linux-gnu" });
    expect(injectionPlan(root, "/tools/aegis", LOADER, LIBS).map((s) => s.target)).toEqual([`${root}/usr/bin/aegis-agent`, `${root}/usr/bin/aegis-harness`, `${root}/usr/bin/aegis-mcp-guest`]);
  });

  it("never shadows a library the image has, and treats an empty placeholder from an earlier boot as missing", () => {
    const root = tree("mixed", { "lib64/ld-linux-x86-64.so.2": "", "lib/x86_64-linux-gnu/libm.so.6": "their libm", "usr/bin/aegis-agent": "" });
    const plan = injectionPlan(root, "/tools/aegis", LOADER, LIBS);
    expect(plan.find((s) => s.target.endsWith("/aegis-agent"))).toMatchObject({ create: false, createParent: false });
    expect(plan.find((s) => s.target.endsWith("/aegis-harness"))).toMatchObject({ create: true, createParent: false });
    expect(plan.find((s) => s.target.endsWith("/libc.so.6"))).toMatchObject({ create: true, createParent: false });
    const targets = plan.map((s) => s.target);
    expect(targets).toContain(`${root}${LOADER}`);
    expect(targets).toContain(`${root}${LIBS[0]}`);
    expect(targets).not.toContain(`${root}${LIBS[1]}`);
    expect(targets).toContain(`${root}/usr/bin/aegis-agent`);
  });

  it("replaces a symlink at /usr/bin/aegis-agent instead of shadowing its target, but follows links to the loader", () => {
    const root = tree("links", { "bin/busybox": "bb" }, { "usr/bin/aegis-agent": "/bin/busybox", "lib64/ld-linux-x86-64.so.2": "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" });
    const plan = injectionPlan(root, "/tools/aegis", LOADER, []);
    expect(plan[0]).toEqual({ source: "/tools/aegis", target: `${root}/usr/bin/aegis-agent`, unlink: true, create: true, createParent: false });
    expect(plan[3]).toEqual({ source: LOADER, target: `${root}/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2`, unlink: false, create: true, createParent: true });
  });

  it("binds only the binaries when the binary is static", () => {
    const root = tree("static", {});
    expect(injectionPlan(root, "/tools/aegis", undefined, LIBS)).toHaveLength(3);
  });

  it("starts a bare injected name by its absolute path, whatever PATH the image sets", () => {
    const argv = (a: string[]) => resolveInjected(a, {}).argv;
    expect(argv(["aegis-agent"])).toEqual(["/usr/bin/aegis-agent"]);
    expect(argv(["aegis-harness", "--help"])).toEqual(["/usr/bin/aegis-harness", "--help"]);
    expect(argv(["./aegis-agent"])).toEqual(["./aegis-agent"]);
    expect(argv(["sh", "-c", "aegis-agent"])).toEqual(["sh", "-c", "aegis-agent"]);
  });

  it("passes the harness's JIT setting to injected binaries only, unless the caller set one", () => {
    const harness = { BUN_JSC_useBaselineJIT: "0" };
    expect(resolveInjected(["aegis-agent"], { A: "1" }, harness).env).toEqual({ A: "1", BUN_JSC_useBaselineJIT: "0" });
    expect(resolveInjected(["/usr/bin/aegis-agent"], {}, harness).env).toEqual({ BUN_JSC_useBaselineJIT: "0" });
    expect(resolveInjected(["aegis-agent"], { BUN_JSC_useBaselineJIT: "1" }, harness).env).toEqual({ BUN_JSC_useBaselineJIT: "1" });
    expect(resolveInjected(["sh"], {}, harness).env).toEqual({});
    expect(resolveInjected(["aegis-agent"], {}, {}).env).toEqual({});
  });
});

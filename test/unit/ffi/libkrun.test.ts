import { describe, expect, it } from "bun:test";
import { CString } from "bun:ffi";
import { cString, cStringArray, envEntries, isKrunError, KrunError, openLibkrun } from "../../../ffi/libkrun.ts";

describe("ffi/libkrun encoding", () => {
  it("encodes a string as UTF-8 followed by exactly one NUL", () => {
    const b = cString("héllo", "x");
    expect([...b]).toEqual([...Buffer.from("héllo", "utf8"), 0]);
  });

  it("rejects an embedded NUL, and a double quote only where libkrun quotes (argv/env)", () => {
    expect(() => cString("a\0b", "root path")).toThrow(/root path "a\\u0000b" contains a NUL byte/);
    expect(cString('a"b', "path").toString()).toBe('a"b\0');
    expect(() => cString('a"b', "argv[0]", true)).toThrow(/argv\[0\].*'"'/);
  });

  it("builds a pointer array of the encoded strings with a trailing NULL, keeping every buffer alive", () => {
    const keep: unknown[] = [];
    const arr = cStringArray(["one", "two"], "argv", keep);
    expect(arr.length).toBe(3);
    expect(arr[2]).toBe(0n);
    expect(keep.length).toBe(3); // two strings and the array itself
    expect(new CString(Number(arr[0])).toString()).toBe("one");
    expect(new CString(Number(arr[1])).toString()).toBe("two");
  });

  it("encodes an empty list as a lone NULL terminator (never a NULL array)", () => {
    const keep: unknown[] = [];
    const arr = cStringArray([], "envp", keep);
    expect([...arr]).toEqual([0n]);
  });

  it("orders env entries by name and rejects names that are empty or contain '='", () => {
    expect(envEntries({ Z: "1", A: "x=y" })).toEqual(["A=x=y", "Z=1"]);
    expect(() => envEntries({ "": "v" })).toThrow(/empty or contains '='/);
    expect(() => envEntries({ "A=B": "v" })).toThrow(/empty or contains '='/);
  });
});

describe("KrunError", () => {
  it("carries the C function, the positive errno and its name", () => {
    const e = new KrunError("krun_set_root", 2, "/x");
    expect(e).toMatchObject({ name: "KrunError", fn: "krun_set_root", errno: 2, code: "ENOENT" });
    expect(e.message).toBe("krun_set_root (/x) failed: ENOENT (-2)");
    expect(isKrunError(e)).toBe(true);
    expect(isKrunError(new Error("x"))).toBe(false);
  });

  it("names an errno the host does not know as E<number>", () => {
    expect(new KrunError("krun_start_enter", 9999).code).toBe("E9999");
  });
});

describe("openLibkrun", () => {
  it("fails with LibkrunLoadError and a hint when the file does not exist", () => {
    expect(() => openLibkrun("/nonexistent/libkrun.so")).toThrow(/cannot load libkrun from \/nonexistent\/libkrun.so: .*\nhint: .*AEGIS_BACKEND=qemu/s);
  });
});

import { describe, expect, it } from "bun:test";
import { resolveUser } from "../../../../guest/harness/users.ts";

const passwd = ["root:x:0:0:root:/root:/bin/bash", "app:x:1000:1000::/home/app:/bin/sh", "broken line", "svc:x:999:999::/srv:/usr/sbin/nologin", ""].join("\n");
const group = ["root:x:0:", "audio:x:29:app,svc", "app:x:1000:", "extra:x:1500:svc,app", "staff:x:50:"].join("\n");

describe("resolveUser (Docker's rules)", () => {
  it("resolves a name to its uid, primary gid, every group that lists it, and its home", () => {
    expect(resolveUser("app", passwd, group)).toEqual({ uid: 1000, gid: 1000, groups: [1000, 29, 1500], home: "/home/app" });
  });
  it("resolves a known uid like its name, and an unknown uid to gid 0 without groups", () => {
    expect(resolveUser("999", passwd, group)).toEqual({ uid: 999, gid: 999, groups: [999, 29, 1500], home: "/srv" });
    expect(resolveUser("4242", passwd, group)).toEqual({ uid: 4242, gid: 0, groups: [0], home: "/" });
  });
  it("takes the group part by name or number instead of the primary gid", () => {
    expect(resolveUser("app:staff", passwd, group)).toEqual({ uid: 1000, gid: 50, groups: [50, 29, 1500], home: "/home/app" });
    expect(resolveUser("4242:7", passwd, group)).toEqual({ uid: 4242, gid: 7, groups: [7], home: "/" });
  });
  it("refuses unknown names, saying which file lacks them", () => {
    expect(() => resolveUser("nobody", passwd, group)).toThrow("unable to find user nobody: no matching entries in the image's /etc/passwd");
    expect(() => resolveUser("app:wheel", passwd, group)).toThrow("unable to find group wheel");
  });
});

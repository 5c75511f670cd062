import { describe, expect, it } from "bun:test";
import { startActivity } from "../../../src/daemon/router/activity.ts";
import { OpenConnections } from "../../../src/daemon/router/connections.ts";
import { TestHooks } from "./_fixtures.ts";

describe("OpenConnections", () => {
  it("closes only the connections of the removed instance", () => {
    const open = new OpenConnections();
    const closed: string[] = [];
    open.add("a", () => closed.push("a1"));
    const removeA2 = open.add("a", () => closed.push("a2"));
    open.add("b", () => closed.push("b1"));
    removeA2();
    expect(open.count("a")).toBe(1);
    open.closeInstance("a");
    expect(closed).toEqual(["a1"]);
    expect(open.count()).toBe(1);
    open.closeAll();
    expect(closed).toEqual(["a1", "b1"]);
    expect(open.count()).toBe(0);
  });
});

describe("startActivity", () => {
  it("reports one start and exactly one end however often the end is called", () => {
    const hooks = new TestHooks();
    const end = startActivity(hooks, "inst-1", () => {});
    end();
    end();
    expect([hooks.started.get("inst-1"), hooks.ended.get("inst-1")]).toEqual([1, 1]);
  });

  it("logs a throwing activityEnded hook instead of throwing from a socket callback", () => {
    const hooks = new TestHooks();
    hooks.activityEnded = () => {
      throw new Error("boom");
    };
    const logs: string[] = [];
    startActivity(hooks, "inst-1", (msg, f) => logs.push(`${msg} ${JSON.stringify(f)}`))();
    expect(logs).toEqual(['router: activityEnded hook threw {"instanceId":"inst-1","error":"Error: boom"}']);
  });
});

import { describe, expect, it } from "bun:test";
import { hasDisplay, parsePort } from "../../../src/cli/commands/ui.ts";

describe("aegis ui flags", () => {
  it("takes --port as a port number and refuses anything else", () => {
    expect(parsePort(undefined)).toBeUndefined();
    expect(parsePort("8098")).toBe(8098);
    for (const bad of ["0", "65536", "80a", "-1", "", " 80", "1e3"]) expect(() => parsePort(bad)).toThrow("is not a port number");
  });
  it("opens a browser only in a graphical session", () => {
    if (process.platform === "darwin") return expect(hasDisplay({})).toBe(true);
    expect(hasDisplay({})).toBe(false);
    expect(hasDisplay({ DISPLAY: ":0" })).toBe(true);
    expect(hasDisplay({ WAYLAND_DISPLAY: "wayland-0" })).toBe(true);
  });
});

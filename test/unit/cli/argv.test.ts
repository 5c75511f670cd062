import { describe, expect, it } from "bun:test";
import type { ArgsDef } from "citty";
import { parseCommandLine, suggest } from "../../../src/cli/argv.ts";
import { UsageError } from "../../../src/cli/errors.ts";

const defs = {
  name: { type: "string", required: true },
  image: { type: "string" },
  expose: { type: "string", repeatable: true },
  json: { type: "boolean" },
  app: { type: "positional", required: false },
} as unknown as ArgsDef;

describe("parseCommandLine", () => {
  it("passes everything after -- through untouched, including --help", () => {
    const p = parseCommandLine(["--name", "x", "--", "ls", "--help", "-la", "a b"], defs);
    expect(p.rest).toEqual(["ls", "--help", "-la", "a b"]);
    expect(p.values.name).toBe("x");
    expect(p.hasRest).toBe(true);
  });
  it("rejects an unknown flag and suggests the near miss", () => {
    expect(() => parseCommandLine(["--name", "x", "--exposee", "80"], defs)).toThrow("unknown flag --exposee (did you mean --expose?)");
  });
  it("collects repeatable flags and refuses a repeated single-valued one", () => {
    const p = parseCommandLine(["--name", "x", "--expose", "80", "--expose=443"], defs);
    expect(p.multi.expose).toEqual(["80", "443"]);
    expect(() => parseCommandLine(["--name", "x", "--name", "y"], defs)).toThrow("given more than once");
  });
  it("fails on a missing required flag and on a flag without its value", () => {
    expect(() => parseCommandLine([], defs)).toThrow("missing required flag --name");
    expect(() => parseCommandLine(["--name"], defs)).toThrow(UsageError);
  });
  it("assigns positionals and refuses surplus ones", () => {
    expect(parseCommandLine(["--name", "n", "myapp"], defs).values.app).toBe("myapp");
    expect(() => parseCommandLine(["--name", "n", "a", "b"], defs)).toThrow('unexpected argument "b"');
  });
  it("parses booleans, their negation and rejects values on them", () => {
    expect(parseCommandLine(["--name", "n", "--json"], defs).values.json).toBe(true);
    expect(parseCommandLine(["--name", "n", "--no-json"], defs).values.json).toBe(false);
    expect(() => parseCommandLine(["--name", "n", "--json=yes"], defs)).toThrow("takes no value");
  });
});

describe("suggest", () => {
  it("finds close candidates only", () => {
    expect(suggest("imgae", ["image", "name"])).toBe("image");
    expect(suggest("zzzzzz", ["image", "name"])).toBeUndefined();
  });
});

describe("bundled short flags", () => {
  const short = {
    interactive: { type: "boolean", alias: "i" },
    tty: { type: "boolean", alias: "t" },
    workdir: { type: "string", alias: "w" },
  } as unknown as ArgsDef;
  it("reads -it as -i -t, as Docker users type it", () => {
    const p = parseCommandLine(["-it", "--", "sh"], short);
    expect(p.values.interactive).toBe(true);
    expect(p.values.tty).toBe(true);
    expect(p.rest).toEqual(["sh"]);
  });
  it("does not bundle value flags or unknown letters, and still refuses them", () => {
    expect(() => parseCommandLine(["-iw", "/x"], short)).toThrow("unknown flag -iw");
    expect(() => parseCommandLine(["-ix"], short)).toThrow("unknown flag -ix");
    expect(parseCommandLine(["-w", "/srv"], short).values.workdir).toBe("/srv");
  });
});

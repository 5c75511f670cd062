import { describe, expect, it } from "bun:test";
import type { ArgsDef } from "citty";
import { editDistance, parseCommandLine, suggest } from "../../../src/cli/argv.ts";
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
  it("fails on a missing required flag", () => {
    expect(() => parseCommandLine([], defs)).toThrow("missing required flag --name");
    expect(() => parseCommandLine(["--image", "alpine"], defs)).toThrow("missing required flag --name");
  });
  it("fails on a string flag given last without its value, naming the flag (required or not)", () => {
    // An optional flag: nothing else could report it, so a lost check would show here.
    expect(() => parseCommandLine(["--name", "x", "--image"], defs)).toThrow(new UsageError("flag --image needs a value"));
    expect(() => parseCommandLine(["--image", "alpine", "--name"], defs)).toThrow(new UsageError("flag --name needs a value"));
    expect(() => parseCommandLine(["--name", "x", "--image", "--", "sh"], defs)).toThrow(new UsageError("flag --image needs a value"));
  });
  it("takes the next token as a string flag's value, even one starting with a dash, and an empty inline value", () => {
    expect(parseCommandLine(["--name", "-x"], defs).values.name).toBe("-x");
    expect(parseCommandLine(["--name="], defs).values.name).toBe("");
    expect(parseCommandLine(["--name=a=b"], defs).values.name).toBe("a=b");
    expect(parseCommandLine(["--name", "x", "--image", "alpine"], defs).values).toEqual({ name: "x", image: "alpine", app: undefined });
  });
  it("assigns positionals and refuses surplus ones", () => {
    expect(parseCommandLine(["--name", "n", "myapp"], defs).values.app).toBe("myapp");
    expect(() => parseCommandLine(["--name", "n", "a", "b"], defs)).toThrow('unexpected argument "b"');
  });
  it("parses booleans, their negation and rejects values on them", () => {
    expect(parseCommandLine(["--name", "n", "--json"], defs).values.json).toBe(true);
    expect(parseCommandLine(["--name", "n", "--no-json"], defs).values.json).toBe(false);
    expect(() => parseCommandLine(["--name", "n", "--json=yes"], defs)).toThrow(new UsageError('flag --json takes no value (got "yes")'));
  });
  it("reads --flag=true as on and --flag=false as off", () => {
    expect(parseCommandLine(["--name", "n", "--json=true"], defs).values.json).toBe(true);
    expect(parseCommandLine(["--name", "n", "--json=false"], defs).values.json).toBe(false);
    expect(parseCommandLine(["--name", "n"], defs).values.json).toBeUndefined();
  });
  it("does not take the token after a boolean as its value", () => {
    const p = parseCommandLine(["--name", "n", "--json", "myapp"], defs);
    expect(p.values.json).toBe(true);
    expect(p.values.app).toBe("myapp");
  });
  it("refuses --no- on a flag that is not a boolean, and on one that does not exist", () => {
    expect(() => parseCommandLine(["--name", "n", "--no-image"], defs)).toThrow("unknown flag --no-image");
    expect(() => parseCommandLine(["--name", "n", "--no-such"], defs)).toThrow("unknown flag --no-such");
  });
  it("prefers a flag literally named no-X over negating X", () => {
    const d = { json: { type: "boolean" }, "no-json": { type: "string" } } as unknown as ArgsDef;
    expect(parseCommandLine(["--no-json", "v"], d).values).toEqual({ "no-json": "v" });
  });
  it("treats a lone - as a positional (stdin, by convention)", () => {
    expect(parseCommandLine(["--name", "n", "-"], defs).values.app).toBe("-");
  });
  it("accepts single-dash long names and short aliases, and reports the flag by its own name", () => {
    const d = { workdir: { type: "string", alias: ["w", "cwd"] }, force: { type: "boolean", alias: "f" } } as unknown as ArgsDef;
    expect(parseCommandLine(["-w", "/a"], d).values.workdir).toBe("/a");
    expect(parseCommandLine(["--cwd=/b"], d).values.workdir).toBe("/b");
    expect(parseCommandLine(["-workdir", "/c"], d).values.workdir).toBe("/c");
    expect(parseCommandLine(["-f"], d).values.force).toBe(true);
    expect(() => parseCommandLine(["-w"], d)).toThrow(new UsageError("flag --workdir needs a value"));
    expect(() => parseCommandLine(["-w", "/a", "--cwd", "/b"], d)).toThrow(new UsageError("flag --workdir given more than once"));
  });
  it("suggests among flag names, not aliases, and says nothing when nothing is near", () => {
    const d = { workdir: { type: "string", alias: "w" } } as unknown as ArgsDef;
    expect(() => parseCommandLine(["--workdri", "/a"], d)).toThrow(new UsageError("unknown flag --workdri (did you mean --workdir?)"));
    expect(() => parseCommandLine(["--zzzzzzzzz"], d)).toThrow(new UsageError("unknown flag --zzzzzzzzz"));
  });
  it("checks enum values, naming the choices", () => {
    const d = { format: { type: "enum", options: ["json", "text"] } } as unknown as ArgsDef;
    expect(parseCommandLine(["--format", "text"], d).values.format).toBe("text");
    expect(parseCommandLine(["--format=json"], d).values.format).toBe("json");
    expect(() => parseCommandLine(["--format", "yaml"], d)).toThrow(new UsageError('invalid value "yaml" for --format; expected one of: json, text'));
    expect(() => parseCommandLine(["--format"], d)).toThrow(new UsageError("flag --format needs a value"));
  });
  it("fills defaults for absent flags and positionals, and keeps given values over them", () => {
    const d = { port: { type: "string", default: "8080" }, verbose: { type: "boolean", default: false }, target: { type: "positional", default: "." } } as unknown as ArgsDef;
    expect(parseCommandLine([], d).values).toEqual({ port: "8080", verbose: false, target: "." });
    expect(parseCommandLine(["--port", "9", "--verbose", "dir"], d).values).toEqual({ port: "9", verbose: true, target: "dir" });
    expect(parseCommandLine([], d).multi).toEqual({});
  });
  it("requires a required positional, named by its value hint or its upper-cased name", () => {
    const hinted = { image: { type: "positional", valueHint: "IMAGE" } } as unknown as ArgsDef;
    const bare = { app: { type: "positional" } } as unknown as ArgsDef;
    expect(() => parseCommandLine([], hinted)).toThrow(new UsageError("missing required argument IMAGE"));
    expect(() => parseCommandLine([], bare)).toThrow(new UsageError("missing required argument APP"));
    expect(parseCommandLine(["x"], bare).values.app).toBe("x");
  });
  it("assigns several positionals in their declared order", () => {
    const d = { src: { type: "positional" }, dst: { type: "positional" } } as unknown as ArgsDef;
    expect(parseCommandLine(["a", "b"], d).values).toEqual({ src: "a", dst: "b" });
  });
  it("hints to put the guest command after -- only when there is no --", () => {
    expect(() => parseCommandLine(["--name", "n", "a", "ls"], defs)).toThrow(new UsageError('unexpected argument "ls" (put the guest command after --)'));
    expect(() => parseCommandLine(["--name", "n", "a", "ls", "--", "x"], defs)).toThrow(new UsageError('unexpected argument "ls"'));
  });
  it("reports hasRest for a bare trailing -- and only the first -- splits", () => {
    expect(parseCommandLine(["--name", "n", "--"], defs)).toMatchObject({ rest: [], hasRest: true });
    expect(parseCommandLine(["--name", "n"], defs)).toMatchObject({ rest: [], hasRest: false });
    expect(parseCommandLine(["--name", "n", "--", "a", "--", "b"], defs).rest).toEqual(["a", "--", "b"]);
  });
});

describe("suggest", () => {
  it("finds close candidates only", () => {
    expect(suggest("imgae", ["image", "name"])).toBe("image");
    expect(suggest("zzzzzz", ["image", "name"])).toBeUndefined();
  });
  it("picks the closest of several candidates, the first on a tie", () => {
    expect(suggest("nam", ["image", "name", "names"])).toBe("name");
    expect(suggest("ab", ["ax", "ay"])).toBe("ax");
  });
  it("allows 2 edits on short names and a third of the length on long ones", () => {
    expect(suggest("xyage", ["image"])).toBe("image");
    expect(suggest("xyzge", ["image"])).toBeUndefined();
    expect(suggest("publish-alll", ["publish-all"])).toBe("publish-all");
    expect(suggest("pubXXXXX-all", ["publish-all"])).toBeUndefined();
    expect(suggest("pubXXXh-allx", ["publish-all"])).toBe("publish-all");
    expect(suggest("pubXXXX-allx", ["publish-all"])).toBeUndefined();
    expect(suggest("a", [])).toBeUndefined();
  });
});

describe("editDistance", () => {
  it("counts insertions, deletions and substitutions", () => {
    expect(editDistance("", "")).toBe(0);
    expect(editDistance("abc", "abc")).toBe(0);
    expect(editDistance("", "abc")).toBe(3);
    expect(editDistance("abc", "")).toBe(3);
    expect(editDistance("kitten", "sitting")).toBe(3);
    expect(editDistance("flaw", "lawn")).toBe(2);
    expect(editDistance("expose", "exposee")).toBe(1);
    expect(editDistance("ab", "ba")).toBe(2);
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
  it("bundles only single-dash tokens: --it is an unknown flag", () => {
    expect(() => parseCommandLine(["--it"], short)).toThrow("unknown flag --it");
  });
  it("leaves other flags alone when bundling", () => {
    const p = parseCommandLine(["-ti"], short);
    expect(p.values).toEqual({ interactive: true, tty: true });
  });
});

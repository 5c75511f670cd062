import { describe, expect, it } from "bun:test";
import { testApi } from "../../helpers/api-app.ts";

describe("API error envelope", () => {
  it("answers unknown endpoints with a JSON 404", async () => {
    using api = testApi();
    const r = await api.call("GET", "/v1/nope");
    expect(r.status).toBe(404);
    expect(r.body.error.code).toBe("not_found");
  });
  it("reports malformed JSON, unknown fields and wrong types as 400 naming the field", async () => {
    using api = testApi();
    const bad = await api.call("POST", "/v1/apps", "{not json");
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toContain("malformed JSON");
    const unknown = await api.call("POST", "/v1/apps", { name: "a", image: "i", command: ["x"], colour: 1 });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.message).toContain('unknown field "colour"');
    const wrong = await api.call("POST", "/v1/apps", { name: "a", image: "i", command: "x" });
    expect(wrong.status).toBe(400);
    expect(wrong.body.error.message).toContain("command: expected array");
    const badPort = await api.call("POST", "/v1/apps", { name: "a", image: "i", command: ["x"], expose: [70000] });
    expect(badPort.body.error.message).toContain("expose.0");
    expect((await api.call("GET", "/v1/apps")).body.apps).toEqual([]);
  });
});

describe("secrets endpoints", () => {
  it("sets, lists names only, reads the value and deletes a workspace secret", async () => {
    using api = testApi();
    expect((await api.call("PUT", "/v1/secrets/API_KEY", { value: "sk-123" })).status).toBe(200);
    const list = await api.call("GET", "/v1/secrets");
    expect(list.body.secrets.map((s: any) => s.name)).toEqual(["API_KEY"]);
    expect(JSON.stringify(list.body)).not.toContain("sk-123");
    expect((await api.call("GET", "/v1/secrets/API_KEY")).body.value).toBe("sk-123");
    expect((await api.call("DELETE", "/v1/secrets/API_KEY")).status).toBe(200);
    expect((await api.call("DELETE", "/v1/secrets/API_KEY")).status).toBe(404);
    expect(api.logLines.join("\n")).not.toContain("sk-123");
  });
  it("rejects names that are not env-var syntax and empty or oversized values, changing nothing", async () => {
    using api = testApi();
    for (const name of ["1ABC", "has-dash", "a%20b"]) {
      const r = await api.call("PUT", `/v1/secrets/${name}`, { value: "v" });
      expect(r.status).toBe(400);
      expect(r.body.error.message).toContain("invalid key");
    }
    expect((await api.call("PUT", "/v1/secrets/OK", { value: "" })).status).toBe(400);
    expect((await api.call("PUT", "/v1/secrets/OK", { value: "x".repeat(70000) })).status).toBe(400);
    expect((await api.call("PUT", "/v1/secrets/OK", { value: "v", extra: true })).status).toBe(400);
    expect((await api.call("PUT", "/v1/secrets/OK")).status).toBe(400);
    expect((await api.call("GET", "/v1/secrets")).body.secrets).toEqual([]);
  });
  it("scopes app secrets to an app resolved by name or id, and 404s for unknown apps", async () => {
    using api = testApi();
    const app = (await api.call("POST", "/v1/apps", { name: "web", image: "alpine", command: ["httpd"] })).body;
    expect((await api.call("PUT", "/v1/apps/web/secrets/DB", { value: "pw" })).status).toBe(200);
    expect((await api.call("GET", `/v1/apps/${app.id}/secrets`)).body.secrets.map((s: any) => s.name)).toEqual(["DB"]);
    expect((await api.call("PUT", "/v1/apps/ghost/secrets/DB", { value: "pw" })).status).toBe(404);
    expect((await api.call("GET", "/v1/secrets")).body.secrets).toEqual([]);
  });
});

describe("apps endpoints", () => {
  it("creates, refuses duplicates, resolves name or id and deletes", async () => {
    using api = testApi();
    const created = await api.call("POST", "/v1/apps", { name: "myapp", image: "python:3.12", command: ["python", "-m", "http.server", "80"], expose: [80] });
    expect(created.status).toBe(201);
    expect(created.body.id).toMatch(/^app-/);
    expect((await api.call("POST", "/v1/apps", { name: "myapp", image: "x", command: ["y"] })).status).toBe(409);
    expect((await api.call("GET", `/v1/apps/${created.body.id}`)).body.name).toBe("myapp");
    expect((await api.call("GET", "/v1/apps/myapp")).body.releases).toEqual([]);
    expect((await api.call("DELETE", "/v1/apps/myapp")).status).toBe(200);
    expect((await api.call("GET", "/v1/apps/myapp")).status).toBe(404);
  });
  it("refuses bad names", async () => {
    using api = testApi();
    for (const name of ["My App", "-x", "UPPER", ""]) {
      expect((await api.call("POST", "/v1/apps", { name, image: "i", command: ["c"] })).status).toBe(400);
    }
  });
});

describe("kits endpoints", () => {
  const manifest = { name: "agent", version: "v0.4.0", description: "d", image: "python:3.12-alpine", instance: { command: ["aegis-agent"] } };
  it("installs a kit into AEGIS_HOME/kits/NAME.json, lists, shows and uninstalls it", async () => {
    using api = testApi();
    expect((await api.call("POST", "/v1/kits", manifest)).status).toBe(201);
    expect(await Bun.file(`${api.paths.kits}/agent.json`).exists()).toBe(true);
    const list = (await api.call("GET", "/v1/kits")).body.kits;
    expect(list.map((k: any) => [k.manifest.name, k.status])).toEqual([["agent", "ok"]]);
    expect((await api.call("GET", "/v1/kits/agent")).body.manifest.image).toBe("python:3.12-alpine");
    expect((await api.call("DELETE", "/v1/kits/agent")).status).toBe(200);
    expect((await api.call("GET", "/v1/kits/agent")).status).toBe(404);
  });
  it("rejects manifests without name, version or image, or with unknown fields", async () => {
    using api = testApi();
    for (const bad of [{ version: "1", image: "i" }, { name: "k", image: "i" }, { name: "k", version: "1" }, { ...manifest, extra: 1 }]) {
      expect((await api.call("POST", "/v1/kits", bad)).status).toBe(400);
    }
    expect((await api.call("GET", "/v1/kits")).body.kits).toEqual([]);
  });
  it("reports a daemon program that is missing in the kit status", async () => {
    using api = testApi();
    await api.call("POST", "/v1/kits", { ...manifest, daemons: [{ name: "gw", command: ["no-such-program-xyz"] }] });
    expect((await api.call("GET", "/v1/kits/agent")).body.status).toBe("missing no-such-program-xyz");
  });
});

describe("tasks endpoints", () => {
  it("rejects bad task requests without creating a task", async () => {
    using api = testApi();
    const cases: [unknown, string][] = [
      [{}, "no command: give one after --"],
      [{ command: [] }, "command: must name a program"],
      [{ command: ["true"], workdir: "relative" }, "workdir: must be an absolute path"],
      [{ command: ["true"], user: "a b" }, "user: must be NAME, UID, NAME:GROUP or UID:GID"],
      [{ command: ["true"], memory_mb: 1 }, "memory_mb: must be at least 128"],
      [{ command: ["true"], env: { "1BAD": "x" } }, "env"],
      [{ command: ["true"], secrets: ["not-a-name"] }, "secrets.0"],
      [{ command: ["true"], colour: "red" }, 'unknown field "colour"'],
    ];
    for (const [body, message] of cases) {
      const r = await api.call("POST", "/v1/tasks", body);
      expect(r.status).toBe(400);
      expect(r.body.error.message).toContain(message);
    }
    const missingSecret = await api.call("POST", "/v1/tasks", { command: ["true"], secrets: ["NOPE"] });
    expect(missingSecret.status).toBe(404);
    expect((await api.call("GET", "/v1/tasks")).body.tasks).toEqual([]);
    expect((await api.call("GET", "/v1/tasks?limit=0")).status).toBe(400);
    expect((await api.call("GET", "/v1/tasks/task-nope")).status).toBe(404);
    expect((await api.call("GET", "/v1/tasks/task-nope/logs")).status).toBe(404);
  });
  it("fails a task cleanly when no VM backend is available, with the reason in its log", async () => {
    using api = testApi();
    const created = await api.call("POST", "/v1/tasks", { command: ["echo", "hi"] });
    expect(created.status).toBe(201);
    const res = await api.app.request(`/v1/tasks/${created.body.id}/logs?follow=true`);
    const lines = (await res.text()).trim().split("\n").map((l) => JSON.parse(l));
    expect(lines.at(-1)).toMatchObject({ type: "end", state: "failed" });
    expect(lines[0].text).toContain("no VM backend is available");
  });
  it("resumes a task's log after_seq: only the lines after it, then the end record", async () => {
    using api = testApi();
    const created = await api.call("POST", "/v1/tasks", { command: ["echo", "hi"] });
    const id = created.body.id;
    await (await api.app.request(`/v1/tasks/${id}/logs?follow=true`)).text();
    const all = (await (await api.app.request(`/v1/tasks/${id}/logs`)).text()).trim().split("\n").map((l) => JSON.parse(l));
    const outputs = all.filter((l) => l.type === "output");
    expect(outputs.length).toBeGreaterThan(0);
    const last = outputs.at(-1).seq;
    const after = (await (await api.app.request(`/v1/tasks/${id}/logs?follow=true&after_seq=${last}`)).text()).trim().split("\n").map((l) => JSON.parse(l));
    expect(after).toEqual([expect.objectContaining({ type: "end", state: "failed" })]);
    const fromFirst = (await (await api.app.request(`/v1/tasks/${id}/logs?after_seq=${outputs[0].seq - 1}`)).text()).trim().split("\n").map((l) => JSON.parse(l));
    expect(fromFirst.filter((l) => l.type === "output").map((l) => l.seq)).toEqual(outputs.map((l) => l.seq));
  });
  it("rejects a malformed after_seq or an unknown log query field with a 400", async () => {
    using api = testApi();
    const created = await api.call("POST", "/v1/tasks", { command: ["true"] });
    for (const q of ["after_seq=-1", "after_seq=abc", "after_seq=1.5", "colour=red"]) {
      const r = await api.call("GET", `/v1/tasks/${created.body.id}/logs?${q}`);
      expect(r.status).toBe(400);
      expect(r.body.error.message).toContain(q.split("=")[0]);
    }
  });
});

import { describe, expect, it } from "bun:test";
import { TetherStore } from "../../../../src/daemon/tether/store.ts";
import { instanceRow, testUi } from "../../../helpers/ui-app.ts";

/** Read an SSE response until `until` holds for the text so far (or fail after `ms`), then cancel it. */
async function readSse(res: Response, until: (text: string) => boolean, ms = 3000): Promise<string> {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = "";
  const deadline = Date.now() + ms;
  try {
    while (!until(text)) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`SSE timed out; got: ${text}`);
      const chunk = await Promise.race([reader.read(), Bun.sleep(left).then(() => null)]);
      if (chunk === null) continue;
      if (chunk.done) break;
      text += decoder.decode(chunk.value, { stream: true });
    }
  } finally {
    await reader.cancel();
  }
  return text;
}

/** The `data` of each `event: NAME` in an SSE text. */
function events(text: string, name: string): any[] {
  return text
    .split("\n\n")
    .filter((b) => b.includes(`event: ${name}\n`))
    .map((b) => JSON.parse(b.split("\n").find((l) => l.startsWith("data: "))!.slice(6)));
}

describe("UI pages", () => {
  it("lists instances with state, memory, parent/children and router links (never the UI origin)", async () => {
    using ui = testUi();
    const parent = instanceRow("i-p", "web", { state: "running" });
    parent.spec.expose = [{ guest_port: 8080, public_port: null }];
    ui.table.insert(parent);
    const child = instanceRow("i-c", "worker.web", { state: "paused" });
    child.spec.parent_id = "i-p";
    ui.table.insert(child);
    const html = await (await ui.browse("/instances")).text();
    expect(html.startsWith("<!DOCTYPE html>")).toBe(true);
    expect(html).toContain('data-instance="i-p"');
    expect(html).toContain('class="state state-running" data-field="state">running');
    expect(html).toContain('class="state state-paused" data-field="state">paused');
    expect(html).toContain("256 MiB");
    expect(html).toContain('href="http://web.localhost:8099/"');
    expect(html).toContain('<a href="/instances/i-c">worker.web</a>');
    // Only pause/stop for a running instance; resume for the paused one; delete asks first.
    expect(html).toContain('data-action="pause" data-ref="i-p"');
    expect(html).toContain('data-action="resume" data-ref="i-c"');
    expect(html).toContain("data-confirm=");
  });
  it("escapes instance-controlled text", async () => {
    using ui = testUi();
    ui.table.insert(instanceRow("i-x", "x", { error: "<script>alert(1)</script>" }));
    const html = await (await ui.browse("/instances/x")).text();
    expect(html).not.toContain("<script>alert(1)</script>");
    expect(html).toContain("&lt;script&gt;alert(1)&lt;/script&gt;");
  });
  it("shows secret names, never values", async () => {
    using ui = testUi();
    ui.api.services.secrets.set({ kind: "workspace" }, "OPENAI_API_KEY", "sk-very-secret-value");
    const html = await (await ui.browse("/secrets")).text();
    expect(html).toContain("OPENAI_API_KEY");
    expect(html).not.toContain("sk-very-secret-value");
  });
  it("renders the tasks, images, apps, kits and status pages", async () => {
    using ui = testUi();
    for (const [path, text] of [
      ["/tasks", "No tasks."],
      ["/images", "No images"],
      ["/apps", "No apps."],
      ["/kits", "No kits installed."],
      ["/status", "http://127.0.0.1:8099"],
      ["/status", "found at /usr/bin/qemu-system-x86_64"],
    ] as const) {
      const res = await ui.browse(path);
      expect(res.status).toBe(200);
      expect(await res.text()).toContain(text);
    }
  });
  it("serves the embedded script and stylesheet", async () => {
    using ui = testUi();
    const js = await ui.browse("/assets/ui.js");
    expect(js.headers.get("content-type")).toContain("javascript");
    expect(await js.text()).toContain("EventSource");
    expect((await ui.browse("/assets/ui.css")).headers.get("content-type")).toContain("text/css");
  });
  it("validates expose bodies and answers unknown instances with the API's envelope", async () => {
    using ui = testUi();
    ui.table.insert(instanceRow("i-e", "e"));
    const bad = await ui.browse("/instances/e/expose", { method: "POST", body: "{nope" });
    expect(bad.status).toBe(400);
    const range = await ui.browse("/instances/e/expose", { method: "POST", body: JSON.stringify({ port: 70000 }) });
    expect(((await range.json()) as any).error.message).toContain("1-65535");
    expect(ui.api.services.instances.get("e").expose).toEqual([]);
    expect((await ui.browse("/instances/nope")).status).toBe(404);
  });
});

describe("UI event streams", () => {
  it("streams an instance's changes as they are written (rows rendered by the server), and its deletion", async () => {
    using ui = testUi();
    ui.table.insert(instanceRow("i-1", "web", { state: "running" }));
    const subscribers = ui.api.services.events.size;
    const res = await ui.browse("/events");
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const reading = readSse(res, (t) => events(t, "instance").some((e) => e.deleted));
    await Bun.sleep(50);
    ui.table.update("i-1", { state: "paused" });
    await Bun.sleep(50);
    ui.table.delete("i-1");
    const text = await reading;
    const got = events(text, "instance");
    const paused = got.find((e) => e.state === "paused");
    expect(paused.row).toContain('data-instance="i-1"');
    expect(paused.row).toContain('data-action="resume"');
    expect(paused.summary).toContain('data-summary="i-1"');
    expect(got.at(-1)).toEqual({ id: "i-1", deleted: true });
    // The subscriber is gone once the browser goes away.
    await Bun.sleep(20);
    expect(ui.api.services.events.size).toBe(subscribers);
  });
  it("follows an instance's output: stored tail first, then live lines", async () => {
    using ui = testUi();
    ui.table.insert(instanceRow("i-l", "logger", { state: "running" }));
    const logs = ui.api.services.logs;
    logs.append("i-l", "stdout", new TextEncoder().encode("before\n"));
    const res = await ui.browse("/instances/logger/logs");
    const reading = readSse(res, (t) => events(t, "end").length > 0);
    await Bun.sleep(50);
    logs.append("i-l", "stderr", new TextEncoder().encode("<b>live</b>\n"));
    logs.close("i-l");
    const text = await reading;
    expect(events(text, "line")).toEqual([
      { stream: "stdout", text: "before\n" },
      { stream: "stderr", text: "<b>live</b>\n" },
    ]);
  });
});

describe("UI tether chat", () => {
  it("shows the chat only for kit instances, and sends a user.message on the ui channel", async () => {
    using ui = testUi();
    ui.table.insert(instanceRow("i-plain", "plain"));
    const kitRow = instanceRow("i-agent", "agent");
    kitRow.spec.kit = "agent";
    ui.table.insert(kitRow);
    expect(await (await ui.browse("/instances/plain")).text()).not.toContain('id="chat"');
    expect(await (await ui.browse("/instances/agent")).text()).toContain('data-chat="/instances/i-agent/chat"');
    const sent = await ui.browse("/instances/agent/chat", { method: "POST", body: JSON.stringify({ text: "hello" }) });
    expect(sent.status).toBe(202);
    const body = (await sent.json()) as any;
    expect(body.seq).toBe(1);
    const stored = new TetherStore(ui.api.services.db).findByMsgId("i-agent", "ingress", body.msg_id) as any;
    expect(stored.session).toEqual({ channel: "ui", id: "ui" });
    expect(stored.payload).toEqual({ text: "hello" });
    for (const bad of ["{nope", JSON.stringify({ text: "" }), JSON.stringify({ text: "x", extra: 1 })]) {
      expect((await ui.browse("/instances/agent/chat", { method: "POST", body: bad })).status).toBe(400);
    }
    expect((await ui.browse("/instances/agent/chat", { method: "POST", body: JSON.stringify({ text: "x" }), csrf: false })).status).toBe(403);
  });
  it("streams the guest's frames to the page", async () => {
    using ui = testUi();
    ui.table.insert(instanceRow("i-a", "a", { state: "running" }));
    const store = new TetherStore(ui.api.services.db);
    const session = { channel: "ui", id: "ui" };
    store.append("i-a", "egress", { v: 1, type: "assistant.delta", ts: new Date().toISOString(), session, msg_id: "d1", reply_to: "m1", payload: { text: "Hel" } });
    store.append("i-a", "egress", { v: 1, type: "assistant.done", ts: new Date().toISOString(), session, msg_id: "d2", reply_to: "m1", payload: { text: "Hello" } });
    const text = await readSse(await ui.browse("/instances/a/chat/stream"), (t) => events(t, "frame").length >= 2);
    const frames = events(text, "frame");
    expect(frames.map((f) => [f.type, f.reply_to, f.payload.text])).toEqual([
      ["assistant.delta", "m1", "Hel"],
      ["assistant.done", "m1", "Hello"],
    ]);
  });
});

describe("UI runs (exec, image pull)", () => {
  it("validates exec requests before starting anything, and answers unknown instances with 404", async () => {
    using ui = testUi();
    ui.table.insert(instanceRow("i-x", "x"));
    expect((await ui.browse("/instances/x/exec", { method: "POST", body: JSON.stringify({ command: [] }) })).status).toBe(400);
    expect((await ui.browse("/instances/x/exec", { method: "POST", body: JSON.stringify({ command: ["ls"], colour: 1 }) })).status).toBe(400);
    expect((await ui.browse("/instances/nope/exec", { method: "POST", body: JSON.stringify({ command: ["ls"] }) })).status).toBe(404);
    expect((await ui.browse("/instances/x/exec", { method: "POST", body: JSON.stringify({ command: ["ls"] }), csrf: false })).status).toBe(403);
    expect(ui.api.services.instances.get("x").state).toBe("stopped");
  });
  it("refuses a bad image reference with 400 and streams a failed pull's error", async () => {
    using ui = testUi();
    const bad = await ui.browse("/images/pull", { method: "POST", body: JSON.stringify({ ref: "UPPER/Case::x" }) });
    expect(bad.status).toBe(400);
    const res = await ui.browse("/images/pull", { method: "POST", body: JSON.stringify({ ref: "127.0.0.1:1/nothing/here:v1" }) });
    expect(res.status).toBe(200);
    const lines = (await res.text()).trim().split("\n").map((l) => JSON.parse(l));
    expect(lines.at(-1).type).toBe("error");
    expect(lines.at(-1).error.message.length).toBeGreaterThan(0);
    expect(ui.api.services.images.list()).toEqual([]);
  });
});

describe("UI wake counts", () => {
  it("counts resumes and boots from the state changes, not starts of other kinds, and shows them", async () => {
    using ui = testUi();
    ui.table.insert(instanceRow("i-w", "w", { state: "stopped" }));
    ui.table.update("i-w", { state: "starting" }); // first boot of a new instance: not a wake
    ui.table.update("i-w", { state: "running", started_at: new Date().toISOString() });
    ui.table.update("i-w", { state: "paused" });
    ui.table.update("i-w", { state: "running" }); // resume
    ui.table.update("i-w", { last_active_at: new Date().toISOString() }); // no state change
    ui.table.update("i-w", { state: "stopping" });
    ui.table.update("i-w", { state: "stopped" });
    ui.table.update("i-w", { state: "starting" }); // boot or restore
    ui.table.update("i-w", { state: "running" });
    const html = await (await ui.browse("/instances")).text();
    expect(html).toContain('<td data-field="wakes">2</td>');
  });
});

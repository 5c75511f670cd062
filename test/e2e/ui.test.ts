/**
 * The web UI end to end: a real daemon with a real QEMU instance, driven
 * from Debian's chromium (headless, through puppeteer-core). The page shows
 * the started instance, pausing it from the page changes its state in the
 * page without a reload (the event stream), the instance page follows its
 * output live, the tether chat streams an Agent Kit instance's answer from
 * the OpenAI stand-in, and a browser without the token is refused.
 *
 * Set AEGIS_UI_SCREENSHOT=path.png to save the instances page (README).
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import puppeteer, { type Browser } from "puppeteer-core";
import { FakeOpenAI } from "../fakes/openai.ts";
import { repoRoot, TestHome } from "../helpers/aegis.ts";
import { busyboxLayer, makeImage } from "../helpers/oci-build.ts";
import { pushImage } from "../helpers/oci-push.ts";
import { startRegistry, type TestRegistry } from "../helpers/registry.ts";

// The callbacks passed to page.evaluate run in the browser; the project's lib is
// not "dom" (it would clash with Bun's types), so name the browser globals here.
declare const document: any;
declare const window: any;

const T = 240_000;
const CHROMIUM = process.env.AEGIS_CHROMIUM ?? "/usr/bin/chromium";
let home: TestHome;
let browser: Browser;
let url: string;
let profile: string;
let reg: TestRegistry;
let openai: FakeOpenAI;

function freePort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

beforeAll(async () => {
  home = new TestHome();
  await home.ok(["up"]);
  url = (await home.ok(["ui", "--no-open", "--port", String(freePort())])).stdout.trim();
  profile = mkdtempSync(join(tmpdir(), "aegis-chromium-"));
  browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    userDataDir: profile,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage"],
  });
}, T);

afterAll(async () => {
  await browser?.close();
  openai?.stop();
  await reg?.[Symbol.asyncDispose]();
  if (profile) rmSync(profile, { recursive: true, force: true });
  await home?.[Symbol.asyncDispose]();
}, T);

describe("aegis ui in a browser", () => {
  it("shows a started instance, and pausing it from the page updates the page without a reload", async () => {
    await home.ok(["instance", "start", "--name", "sleeper", "--pause-after", "0", "--", "sh", "-c", "while true; do echo tick; sleep 0.5; done"]);
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 560 });
    await page.goto(url, { waitUntil: "domcontentloaded" });
    expect(new URL(page.url()).pathname).toBe("/instances");
    expect(page.url()).not.toContain("token=");
    const state = (name: string) =>
      page.evaluate((n) => {
        const row = [...document.querySelectorAll("tr[data-instance]")].find((r: any) => r.querySelector("td a")?.textContent === n);
        return row?.querySelector('[data-field="state"]')?.textContent ?? null;
      }, name);
    expect(await state("sleeper")).toBe("running");
    await page.waitForFunction(() => document.getElementById("live")?.dataset.live === "on", { timeout: 10_000 });
    if (process.env.AEGIS_UI_SCREENSHOT) await page.screenshot({ path: process.env.AEGIS_UI_SCREENSHOT as `${string}.png` });
    // A marker that a reload would wipe.
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 42));
    await page.click('tr[data-instance] button[data-action="pause"]');
    await page.waitForFunction(() => document.querySelector('tr[data-instance] [data-field="state"]')?.textContent === "paused", { timeout: 60_000 });
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(42);
    expect(JSON.parse((await home.ok(["instance", "info", "sleeper", "--json"])).stdout).state).toBe("paused");
    // Resume from the page: running again, counted as a wake.
    await page.click('tr[data-instance] button[data-action="resume"]');
    await page.waitForFunction(() => document.querySelector('tr[data-instance] [data-field="state"]')?.textContent === "running", { timeout: 60_000 });
    expect(await page.evaluate(() => document.querySelector('tr[data-instance] [data-field="wakes"]').textContent)).toBe("1");
    // The page follows the CLI's changes too.
    await home.ok(["instance", "stop", "sleeper"]);
    await page.waitForFunction(() => document.querySelector('tr[data-instance] [data-field="state"]')?.textContent === "stopped", { timeout: 60_000 });
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(42);
    // Delete asks first: dismissing keeps the instance, accepting deletes it and the row goes.
    const answers = [false, true];
    const dialogs: string[] = [];
    page.on("dialog", (d) => {
      dialogs.push(d.message());
      void (answers.shift() ? d.accept() : d.dismiss());
    });
    await page.click('tr[data-instance] button[data-action="delete"]');
    await Bun.sleep(500);
    expect(dialogs[0]).toContain("Delete instance sleeper?");
    expect(JSON.parse((await home.ok(["instance", "info", "sleeper", "--json"])).stdout).state).toBe("stopped");
    await page.click('tr[data-instance] button[data-action="delete"]');
    await page.waitForFunction(() => document.querySelector("tr[data-instance]") === null, { timeout: 30_000 });
    expect((await home.run(["instance", "info", "sleeper"])).code).not.toBe(0);
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(42);
    await page.close();
  }, T);

  it("follows an instance's output live on its page", async () => {
    await home.ok(["instance", "start", "--name", "ticker", "--pause-after", "0", "--", "sh", "-c", "i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.3; done"]);
    const page = await browser.newPage();
    await page.goto(url, { waitUntil: "domcontentloaded" });
    await page.goto(new URL("/instances/ticker", url).href.replace(/\?.*$/, ""), { waitUntil: "domcontentloaded" });
    await page.waitForFunction(() => /tick-\d+/.test(document.getElementById("logs")?.textContent ?? ""), { timeout: 60_000 });
    const first = await page.evaluate(() => document.getElementById("logs")!.textContent!.match(/tick-(\d+)/g)!.length);
    await page.waitForFunction((n) => (document.getElementById("logs")!.textContent!.match(/tick-(\d+)/g) ?? []).length > n + 2, { timeout: 30_000 }, first);
    // A command run from the page streams its output and exit code back.
    await page.type("#exec-form input", "echo hello-$((40+2)); echo oops >&2; exit 3");
    await page.click('#exec-form button[type="submit"]');
    await page.waitForFunction(() => document.getElementById("exec-output").dataset.state === "done", { timeout: 60_000 });
    const out = await page.evaluate(() => document.getElementById("exec-output").textContent);
    expect(out).toContain("hello-42\n");
    expect(out).toContain("oops\n");
    expect(out).toContain("[exit 3]");
    await home.ok(["instance", "stop", "ticker"]);
    await page.close();
  }, T);

  it("streams the agent's answer in the tether chat of an Agent Kit instance, with presence", async () => {
    reg = await startRegistry();
    await pushImage({ base: reg.base, repo: "e2e/ui-agent" }, makeImage([await busyboxLayer()], { env: ["PATH=/bin:/sbin"] }), "v1");
    openai = new FakeOpenAI({ apiKey: "sk-test" });
    // A slow stream, so the page shows the answer growing before it is done.
    openai.replies.push({ chunks: ["Hello ", "from ", "the ", "agent"], delayMs: 400 });
    await home.ok(["kit", "install", join(repoRoot, "kits/agent.yaml")]);
    await home.ok(["secret", "set", "OPENAI_API_KEY", "sk-test"]);
    await home.ok([
      "instance", "start", "--kit", "agent", "--name", "helper", "--image", `${reg.host}/e2e/ui-agent:v1`,
      "--secret", "OPENAI_API_KEY", "--env", `OPENAI_BASE_URL=${openai.baseUrl.replace("127.0.0.1", "10.0.2.2")}`,
      "--allow", `host:${new URL(openai.baseUrl).port}`, "--pause-after", "0",
    ]);
    const page = await browser.newPage();
    await page.goto(url, { waitUntil: "domcontentloaded" });
    await page.goto(new URL("/instances/helper", url).href.replace(/\?.*$/, ""), { waitUntil: "domcontentloaded" });
    // Record what the page shows as it changes: presence states and the growing answer.
    await page.evaluate(() => {
      const seen: { presence: string[]; answers: string[] } = { presence: [], answers: [] };
      window.seen = seen;
      new window.MutationObserver(() => {
        const p = document.getElementById("presence").dataset.presence;
        if (seen.presence.at(-1) !== p) seen.presence.push(p);
        const a = document.querySelector("#messages .msg.assistant")?.textContent;
        if (a && seen.answers.at(-1) !== a) seen.answers.push(a);
      }).observe(document.getElementById("chat"), { subtree: true, childList: true, characterData: true, attributes: true });
    });
    await page.type("#chat-form input", "hi there");
    await page.click('#chat-form button[type="submit"]');
    await page.waitForFunction(() => document.querySelector("#messages .msg.assistant")?.dataset.done === "true", { timeout: 120_000 });
    const shown = await page.evaluate(() => ({ user: document.querySelector("#messages .msg.user").textContent, answer: document.querySelector("#messages .msg.assistant").textContent, seen: window.seen }));
    expect(shown.user).toBe("hi there");
    expect(shown.answer).toBe("Hello from the agent");
    // It streamed: partial answers were on the page before the whole one.
    expect(shown.seen.answers.length).toBeGreaterThan(1);
    expect(shown.seen.answers.at(-1)).toBe("Hello from the agent");
    expect(shown.seen.presence.some((p: string) => p === "thinking" || p === "typing")).toBe(true);
    expect((openai.requests.at(-1)!.body as { messages: { role: string; content: string }[] }).messages.at(-1)!.content).toContain("hi there");
    await home.ok(["instance", "stop", "helper"]);
    await page.close();
  }, T);

  it("refuses a browser without the token", async () => {
    const context = await browser.createBrowserContext();
    const page = await context.newPage();
    const res = await page.goto(new URL("/instances", url).href.replace(/\?.*$/, ""));
    expect(res?.status()).toBe(401);
    expect(await page.evaluate(() => document.body.textContent)).toContain("aegis ui");
    await context.close();
  }, T);
});

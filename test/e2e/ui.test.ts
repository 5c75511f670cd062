/**
 * The web UI end to end: a real daemon with a real QEMU instance, driven
 * from Debian's chromium (headless, through puppeteer-core). The page shows
 * the started instance, pausing it from the page changes its state in the
 * page without a reload (the event stream), the instance page follows its
 * output live, and a browser without the token is refused.
 *
 * Set AEGIS_UI_SCREENSHOT=path.png to save the instances page (README).
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import puppeteer, { type Browser } from "puppeteer-core";
import { TestHome } from "../helpers/aegis.ts";

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
    // The row now offers resume; the page follows the CLI's changes too.
    expect(await page.$('tr[data-instance] button[data-action="resume"]')).not.toBeNull();
    await home.ok(["instance", "stop", "sleeper"]);
    await page.waitForFunction(() => document.querySelector('tr[data-instance] [data-field="state"]')?.textContent === "stopped", { timeout: 60_000 });
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
    await home.ok(["instance", "stop", "ticker"]);
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

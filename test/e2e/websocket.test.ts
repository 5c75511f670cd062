/**
 * A WebSocket echo through the router to a real VM. The echo server is a
 * Bun program the test compiles and ships in a test image (just that binary:
 * the image has no libc, so this also proves the harness's loader injection
 * for images without glibc).
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { repoRoot, TestHome } from "../helpers/aegis.ts";
import { makeImage, makeLayer } from "../helpers/oci-build.ts";
import { pushImage } from "../helpers/oci-push.ts";
import { startRegistry, type TestRegistry } from "../helpers/registry.ts";

const T = 180_000;
let reg: TestRegistry;
let home: TestHome;
let work: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "aegis-ws-"));
  const bin = join(work, "ws-echo");
  const build = Bun.spawn(["bun", "build", "--compile", join(repoRoot, "test", "fixtures", "ws-echo.ts"), "--outfile", bin], { stdout: "pipe", stderr: "pipe" });
  const [, err, code] = await Promise.all([new Response(build.stdout).text(), new Response(build.stderr).text(), build.exited]);
  if (code !== 0) throw new Error(`compiling ws-echo failed: ${err}`);
  const layer = makeLayer(
    [
      { path: "usr/", type: "Directory" },
      { path: "usr/bin/", type: "Directory" },
      { path: "usr/bin/ws-echo", content: new Uint8Array(readFileSync(bin)), mode: 0o755 },
    ],
    "none",
  );
  reg = await startRegistry();
  await pushImage({ base: reg.base, repo: "e2e/ws-echo" }, makeImage([layer], { env: ["PATH=/usr/bin"] }), "v1");
  home = new TestHome();
  await home.ok(["up"]);
}, T);

afterAll(async () => {
  await home?.[Symbol.asyncDispose]();
  await reg?.[Symbol.asyncDispose]();
  rmSync(work, { recursive: true, force: true });
});

describe("WebSocket through the router", () => {
  it("echoes text and binary messages end to end, and closes cleanly", async () => {
    await home.ok(["instance", "start", "--name", "echo", "--image", `${reg.host}/e2e/ws-echo:v1`, "--expose", "8080", "--pause-after", "0", "--", "ws-echo", "8080"]);
    const { router_url } = JSON.parse((await home.ok(["status", "--json"])).stdout);
    expect(await (await fetch(`${router_url}/echo/`)).text()).toBe("ws-echo\n");

    const ws = new WebSocket(`${router_url.replace("http", "ws")}/echo/`);
    ws.binaryType = "arraybuffer";
    const received: (string | ArrayBuffer)[] = [];
    const closed = new Promise<number>((resolve) => ws.addEventListener("close", (e) => resolve(e.code)));
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener("open", () => resolve());
      ws.addEventListener("error", () => reject(new Error("websocket error")));
    });
    const gotTwo = new Promise<void>((resolve) =>
      ws.addEventListener("message", (e) => {
        received.push(e.data as string | ArrayBuffer);
        if (received.length === 2) resolve();
      }),
    );
    ws.send("hello through the router");
    ws.send(new Uint8Array([0, 1, 2, 255]));
    await gotTwo;
    expect(received[0]).toBe("hello through the router");
    expect([...new Uint8Array(received[1] as ArrayBuffer)]).toEqual([0, 1, 2, 255]);
    ws.close(1000);
    expect(await closed).toBe(1000);
    await home.ok(["instance", "delete", "echo"]);
  }, T);
});

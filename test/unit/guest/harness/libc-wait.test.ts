import { expect, it } from "bun:test";
import { hasExitedChild } from "../../../../guest/harness/libc.ts";

it("tells whether a child has exited without reaping it", async () => {
  expect(hasExitedChild()).toBe(false);
  const p = Bun.spawn(["true"], { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
  // Block the event loop, so Bun cannot reap the child meanwhile: it stays a zombie.
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 500);
  expect(hasExitedChild()).toBe(true);
  expect(hasExitedChild()).toBe(true); // peeking reaps nothing
  expect(await p.exited).toBe(0); // Bun still gets its child's status
  expect(hasExitedChild()).toBe(false);
});

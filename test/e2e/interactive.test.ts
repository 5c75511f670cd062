/**
 * Interactive use as Docker users know it, against real VMs: `-i` streams
 * piped stdin, `-it` runs on a real terminal (tmux stands in for the user's
 * terminal emulator) with the window size at start and after a resize,
 * Ctrl+C interrupting the foreground process, Ctrl+D ending the shell, the
 * guest's exit code, and the local terminal restored afterwards.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { TestHome, aegisBin } from "../helpers/aegis.ts";

const TIMEOUT = 180_000;
let home: TestHome;
const sessions: string[] = [];

function tmux(...args: string[]): string {
  const p = Bun.spawnSync(["tmux", ...args], { stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`tmux ${args.join(" ")}: ${p.stderr.toString()}`);
  return p.stdout.toString();
}

/** Wait until the pane shows `pattern` (the guest under TCG takes seconds to boot). */
async function waitFor(session: string, pattern: RegExp, timeoutMs = 90_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let screen = "";
  while (Date.now() < deadline) {
    screen = tmux("capture-pane", "-t", session, "-p");
    if (pattern.test(screen)) return screen;
    await Bun.sleep(250);
  }
  throw new Error(`pane ${session} never showed ${pattern}; it shows:\n${screen}`);
}

/** Start `args` in a detached tmux session of the given size; afterwards the pane reports the exit code and the terminal mode. */
function terminal(name: string, args: string[], cols = 100, rows = 30): string {
  const session = `aegis-e2e-${process.pid}-${name}`;
  sessions.push(session);
  const cmd = `${[aegisBin(), ...args].map((a) => `'${a}'`).join(" ")}; echo "EXIT=$?"; stty -a | grep -q -- '-icanon' && echo MODE=raw || echo MODE=cooked; sleep 600`;
  tmux("new-session", "-d", "-s", session, "-x", String(cols), "-y", String(rows), "-e", `AEGIS_HOME=${home.dir}`, cmd);
  return session;
}

beforeAll(async () => {
  home = new TestHome();
  await home.ok(["up"]);
}, TIMEOUT);

afterAll(async () => {
  for (const s of sessions) Bun.spawnSync(["tmux", "kill-session", "-t", s]);
  await home?.[Symbol.asyncDispose]();
});

describe("interactive sessions", () => {
  it("streams piped stdin with -i (no terminal) and keeps the exit code", async () => {
    const r = await home.run(["run", "-i", "--", "sh", "-c", "cat; read -r x || true; exit 3"], { stdin: "data\nmore\n" });
    expect(r.stdout).toBe("data\nmore\n");
    expect(r.code).toBe(3);
  }, TIMEOUT);

  it("runs -it on a real terminal: size, resize, Ctrl+C, exit code, terminal restored", async () => {
    const t = terminal("run", ["run", "-it", "--", "sh"]);
    await waitFor(t, /^\/ # ?$/m);
    tmux("send-keys", "-t", t, "tty; stty size", "Enter");
    await waitFor(t, /\/dev\/pts\/\d+\n30 100/);
    tmux("resize-window", "-t", t, "-x", "120", "-y", "40");
    await Bun.sleep(500);
    tmux("send-keys", "-t", t, "clear; stty size", "Enter");
    await waitFor(t, /^40 120$/m);
    tmux("send-keys", "-t", t, "sleep 300; echo finished-sleeping", "Enter");
    await Bun.sleep(1500);
    tmux("send-keys", "-t", t, "C-c");
    await waitFor(t, /\^C/);
    tmux("send-keys", "-t", t, "echo after-interrupt; exit 5", "Enter");
    const screen = await waitFor(t, /MODE=\w+/);
    expect(screen).toContain("after-interrupt");
    expect(screen).not.toMatch(/^finished-sleeping$/m);
    expect(screen).toContain("EXIT=5");
    expect(screen).toContain("MODE=cooked");
  }, TIMEOUT);

  it("runs exec -it in an instance, where Ctrl+D ends the shell", async () => {
    await home.ok(["instance", "start", "--name", "box", "--", "sleep", "1000000"]);
    const t = terminal("exec", ["exec", "-it", "box", "--", "sh"]);
    await waitFor(t, /^\/ # ?$/m);
    tmux("send-keys", "-t", t, "echo in-the-instance", "Enter");
    await waitFor(t, /^in-the-instance$/m);
    tmux("send-keys", "-t", t, "C-d");
    const screen = await waitFor(t, /MODE=\w+/);
    expect(screen).toContain("EXIT=0");
    expect(screen).toContain("MODE=cooked");
  }, TIMEOUT);
});

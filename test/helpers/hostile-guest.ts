/**
 * A hostile guest, for e2e tests and bench/hostile.ts: a script that runs
 * inside the VM as root (`aegis exec NAME -- ...hostileCommand(mode)`) through
 * the injected Aegis binary in plain-Bun mode (BUN_BE_BUN=1). To write raw
 * bytes to the control port it takes the harness's own descriptor with
 * pidfd_getfd(2): the virtio-serial port can be opened only once (EBUSY), and
 * root in the guest can always do this, so the host must treat the port as
 * fully attacker-controlled. Modes:
 * - `line`: `MB` MiB without a newline, then one newline (resync check);
 * - `invalid`: `N` invalid notifications (bad tether frames with long junk
 *   types, bad `exit` params, unparsable lines);
 * - `frames`: `N` valid tether frames of ~1 MiB JSON each, all control characters;
 * - `mcp`: `N` requests on the MCP bridge socket /run/aegis/mcp.sock (any guest user can).
 * Prints one JSON line with what it did.
 */
const SCRIPT = String.raw`
const fs = require("fs");
const mode = process.env.MODE, N = Number(process.env.N || 0), MB = Number(process.env.MB || 0);
function portFd() {
  const { dlopen } = require("bun:ffi");
  const libc = dlopen("libc.so.6", { syscall: { args: ["i64", "i64", "i64", "i64"], returns: "i64" } });
  let target = -1;
  for (const f of fs.readdirSync("/proc/1/fd")) { try { if (fs.readlinkSync("/proc/1/fd/" + f).startsWith("/dev/vport")) target = +f; } catch {} }
  if (target < 0) throw new Error("no /dev/vport* descriptor in PID 1");
  const pidfd = Number(libc.symbols.syscall(434n, 1n, 0n, 0n)); // pidfd_open(1, 0)
  const fd = Number(libc.symbols.syscall(438n, BigInt(pidfd), BigInt(target), 0n)); // pidfd_getfd
  if (pidfd < 0 || fd < 0) throw new Error("pidfd_getfd failed: " + pidfd + " " + fd);
  return fd;
}
function writeAll(fd, buf) { for (let off = 0; off < buf.length; ) off += fs.writeSync(fd, buf, off, buf.length - off); }
const t0 = Date.now();
let out = {};
if (mode === "line") {
  const fd = portFd(), chunk = Buffer.alloc(1 << 20, 0x41);
  for (let i = 0; i < MB; i++) writeAll(fd, chunk);
  writeAll(fd, Buffer.from("\n"));
  out = { mib: MB };
} else if (mode === "invalid") {
  const fd = portFd();
  const junk = "T\u0007\n".repeat(300);
  const lines = [
    JSON.stringify({ jsonrpc: "2.0", method: "tether.frame", params: { frame: { type: junk } } }),
    JSON.stringify({ jsonrpc: "2.0", method: "exit", params: { id: 1, code: "x", signal: junk } }),
    "{not json " + "A".repeat(300),
  ];
  const batch = Buffer.from(Array.from({ length: 300 }, (_, i) => lines[i % 3]).join("\n") + "\n");
  for (let i = 0; i < N; i += 300) writeAll(fd, batch);
  const bigType = JSON.stringify({ jsonrpc: "2.0", method: "tether.frame", params: { frame: { type: "X".repeat(1536 * 1024) } } }) + "\n";
  for (let i = 0; i < 10; i++) writeAll(fd, Buffer.from(bigType));
  out = { notifications: Math.ceil(N / 300) * 300, big: 10 };
} else if (mode === "frames") {
  const fd = portFd();
  const text = "\u0001".repeat(170000);
  for (let i = 0; i < N; i++) {
    const frame = { v: 1, type: "assistant.delta", session: { channel: "test", id: "flood" }, payload: { text } };
    writeAll(fd, Buffer.from(JSON.stringify({ jsonrpc: "2.0", method: "tether.frame", params: { frame } }) + "\n"));
  }
  out = { frames: N };
} else if (mode === "mcp") {
  const net = require("net");
  out = await new Promise((resolve, reject) => {
    const s = net.connect("/run/aegis/mcp.sock");
    let buf = "", answers = 0, limited = 0;
    const seen = new Set(), bad = [];
    s.on("data", (d) => {
      buf += d; last = Date.now();
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl); buf = buf.slice(nl + 1); answers++;
        try { seen.add(JSON.parse(line).id); } catch { bad.push(line.slice(0, 200)); }
        if (line.includes("rate limited")) limited++;
        if (answers === N) { clearInterval(idle); s.end(); resolve({ requests: N, answers, limited }); }
      }
    });
    s.on("error", reject);
    // Should an answer never come, stop once answers have stopped arriving for 5 s and say which ids are missing.
    let last = Date.now();
    const idle = setInterval(() => {
      if (Date.now() - last < 5000) return;
      clearInterval(idle); s.destroy();
      resolve({ requests: N, answers, limited, missing: Array.from({ length: N }, (_, i) => i + 1).filter((i) => !seen.has(i)).slice(0, 20), bad });
    }, 500);
    s.on("connect", () => {
      let text = "";
      for (let i = 1; i <= N; i++) text += JSON.stringify({ jsonrpc: "2.0", id: i, method: "mcp.self_info", params: {} }) + "\n";
      s.write(text);
    });
  });
}
console.log(JSON.stringify({ mode, ms: Date.now() - t0, ...out }));
`;

/** The argv (after `--`) that runs the hostile script in the guest. */
export function hostileCommand(): string[] {
  return ["/usr/bin/aegis-harness", "-e", SCRIPT];
}

/** `--env` arguments for one flood. */
export function hostileEnv(mode: "line" | "invalid" | "frames" | "mcp", n: number): string[] {
  return ["--env", "BUN_BE_BUN=1", "--env", `MODE=${mode}`, "--env", mode === "line" ? `MB=${n}` : `N=${n}`];
}

/** Resident and peak-resident memory of a process, in MiB (from /proc/PID/status). */
export function memoryMiB(pid: number): { rss: number; hwm: number } {
  const status = require("node:fs").readFileSync(`/proc/${pid}/status`, "utf8") as string;
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(status)?.[1] ?? Number.NaN);
  return { rss: kb("VmRSS") / 1024, hwm: kb("VmHWM") / 1024 };
}

/** Sample a process's RSS every 50 ms while `fn` runs; resolves with fn's result and the peak RSS in MiB. */
export async function withPeakRss<T>(pid: number, fn: () => Promise<T>): Promise<{ result: T; peak: number }> {
  let peak = memoryMiB(pid).rss;
  const timer = setInterval(() => {
    peak = Math.max(peak, memoryMiB(pid).rss);
  }, 50);
  try {
    const result = await fn();
    peak = Math.max(peak, memoryMiB(pid).rss);
    return { result, peak };
  } finally {
    clearInterval(timer);
  }
}

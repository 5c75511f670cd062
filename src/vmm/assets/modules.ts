/**
 * @module vmm/assets/modules
 * Kernel module selection for the initramfs. The Debian cloud kernel builds
 * virtio, overlayfs and fuse as modules, so the initramfs carries them and
 * /init insmods them in dependency order.
 *
 * Dependencies come from `modules.dep` when the tree has one (an installed
 * kernel, AEGIS_KERNEL_MODULES), else from each `.ko`'s own `.modinfo`
 * `depends=` string: a .deb unpacked with `dpkg-deb -x` has no modules.dep
 * because depmod runs only at install time. Built-in modules (listed in
 * `modules.builtin`) are skipped.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, join } from "node:path";

/** The modules the guest needs, by purpose. Names use `_` (the kernel's canonical form). */
export const GUEST_MODULES = {
  /** Always loaded: the control port, disks and the overlay rootfs. */
  base: ["virtio_mmio", "virtio_blk", "virtio_console", "overlay", "ext4"],
  /** Always loaded: eth0 for user networking. */
  net: ["failover", "net_failover", "virtio_net"],
  /** Loaded when the VM has a virtiofs workspace (`aegis.workspace=1`). */
  workspace: ["fuse", "virtiofs"],
} as const;

/** A module found in a modules tree. */
export interface ModuleInfo {
  name: string;
  path: string;
  deps: string[];
}

/** Canonical module name from a file name (`virtio-net.ko.xz` -> `virtio_net`). */
export function moduleName(file: string): string {
  return basename(file).replace(/\.ko(\.(xz|zst|gz))?$/, "").replaceAll("-", "_");
}

/** Parse `modules.dep` text (`kernel/a.ko: kernel/b.ko kernel/c.ko`) into name -> relative path and deps. */
export function parseModulesDep(text: string): Map<string, { path: string; deps: string[] }> {
  const out = new Map<string, { path: string; deps: string[] }>();
  for (const line of text.split("\n")) {
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    const path = line.slice(0, colon).trim();
    const deps = line.slice(colon + 1).trim().split(/\s+/).filter(Boolean).map(moduleName);
    out.set(moduleName(path), { path, deps });
  }
  return out;
}

/** Extract the `depends=` list from an uncompressed .ko's `.modinfo` strings. */
export function modinfoDepends(ko: Uint8Array): string[] {
  const needle = Buffer.from("\0depends=");
  const buf = Buffer.from(ko.buffer, ko.byteOffset, ko.length);
  const at = buf.indexOf(needle);
  if (at < 0) return [];
  const start = at + needle.length;
  const end = buf.indexOf(0, start);
  const value = buf.subarray(start, end < 0 ? buf.length : end).toString("utf8");
  return value.split(",").filter(Boolean).map((n) => n.replaceAll("-", "_"));
}

function walk(dir: string, out: string[]): void {
  for (const ent of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, ent.name);
    if (ent.isDirectory()) walk(p, out);
    else if (/\.ko(\.(xz|zst|gz))?$/.test(ent.name)) out.push(p);
  }
}

/** Read the set of built-in module names from `modules.builtin`. */
export function builtinModules(modulesDir: string): Set<string> {
  const p = join(modulesDir, "modules.builtin");
  if (!existsSync(p)) return new Set();
  return new Set(readFileSync(p, "utf8").split("\n").filter(Boolean).map(moduleName));
}

/**
 * Resolve `wanted` into a load order (dependencies first), skipping built-ins.
 * `lookup(name)` returns a module's path and deps, or undefined when unknown.
 * Throws when a wanted module or a dependency is neither a module nor built in.
 */
export function loadOrder(
  wanted: readonly string[],
  lookup: (name: string) => { path: string; deps: string[] } | undefined,
  builtin: ReadonlySet<string>,
): ModuleInfo[] {
  const order: ModuleInfo[] = [];
  const seen = new Set<string>();
  const visit = (name: string, chain: string[]): void => {
    if (seen.has(name) || builtin.has(name)) return;
    if (chain.includes(name)) throw new Error(`module dependency cycle: ${[...chain, name].join(" -> ")}`);
    const info = lookup(name);
    if (!info) throw new Error(`kernel module ${name} is neither built in nor present (needed by ${chain.at(-1) ?? "the guest"})`);
    for (const d of info.deps) visit(d, [...chain, name]);
    seen.add(name);
    order.push({ name, path: info.path, deps: info.deps });
  };
  for (const w of wanted) visit(w, []);
  return order;
}

/** Build a lookup function over a modules tree (`/lib/modules/<version>`). */
export function moduleLookup(modulesDir: string): (name: string) => { path: string; deps: string[] } | undefined {
  const depFile = join(modulesDir, "modules.dep");
  if (existsSync(depFile) && statSync(depFile).size > 0) {
    const dep = parseModulesDep(readFileSync(depFile, "utf8"));
    return (name) => {
      const e = dep.get(name);
      return e ? { path: join(modulesDir, e.path), deps: e.deps } : undefined;
    };
  }
  const files: string[] = [];
  walk(join(modulesDir, "kernel"), files);
  const byName = new Map(files.map((f) => [moduleName(f), f]));
  return (name) => {
    const path = byName.get(name);
    if (!path) return undefined;
    if (!path.endsWith(".ko")) throw new Error(`${path}: compressed modules need a modules.dep (run depmod) to resolve dependencies`);
    return { path, deps: modinfoDepends(readFileSync(path)) };
  };
}

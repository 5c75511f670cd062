/**
 * @module bench/smaps
 * Where a paused QEMU's private memory (USS) goes, by mapping, from
 * /proc/PID/smaps: what bench/density.ts prints next to the totals, so a
 * change to the VM's memory shows which part it moved. The classes:
 * - `guestRam`: the guest RAM mapping (a template clone's `.ram` file mapped
 *   copy-on-write, a workspace VM's `memfd:mem0`, or an anonymous mapping of
 *   exactly the guest's size): its private pages are those the guest wrote;
 * - `tcgCode`: anonymous `rwx` mappings, which in QEMU is the TCG
 *   translation cache (tb-size);
 * - `binaries`: the QEMU binary and its libraries (relocated data);
 * - `otherAnon`: everything else (malloc heap and arenas, thread and
 *   coroutine stacks, ROM RAM blocks).
 */

/** USS (Private_Clean + Private_Dirty) of one process by mapping class, in MB. */
export interface UssBreakdown {
  guestRam: number;
  tcgCode: number;
  binaries: number;
  otherAnon: number;
}

const HEADER = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \S+\s*(.*)$/;

/** The class of one mapping, from its header line's fields. */
function classOf(bytes: number, perms: string, name: string, guestRamBytes: number): keyof UssBreakdown {
  if (name.endsWith(".ram") || name.startsWith("/memfd:mem0")) return "guestRam";
  const anon = name === "" || name.startsWith("[");
  if (anon && bytes === guestRamBytes) return "guestRam";
  if (anon && perms.startsWith("rwx")) return "tcgCode";
  if (!anon) return "binaries";
  return "otherAnon";
}

/** Split the USS of one /proc/PID/smaps text by class; `guestRamMb` is the guest's memory size. */
export function ussBreakdown(smaps: string, guestRamMb: number): UssBreakdown {
  const out: UssBreakdown = { guestRam: 0, tcgCode: 0, binaries: 0, otherAnon: 0 };
  let cls: keyof UssBreakdown | undefined;
  for (const line of smaps.split("\n")) {
    const h = line.match(HEADER);
    if (h) {
      cls = classOf(parseInt(h[2]!, 16) - parseInt(h[1]!, 16), h[3]!, h[4]!, guestRamMb * 1024 * 1024);
      continue;
    }
    const f = line.match(/^Private_(?:Clean|Dirty):\s+(\d+) kB/);
    if (f && cls) out[cls] += Number(f[1]) / 1024;
  }
  return out;
}

/**
 * @module daemon/e2b/entry-info
 * Our `FileStat` (the guest's lstat) as envd's `EntryInfo` in the protobuf
 * JSON mapping: type as the `FileType` enum name, size as an int64 string,
 * the modification time as an RFC 3339 timestamp, and `permissions` in the
 * `ls -l` form envd reports (`drwxr-xr-x`, `-rw-r--r--`, `Lrwxrwxrwx`).
 * Owners are reported by name for root and by number otherwise (the guest's
 * passwd file is not consulted for every entry).
 */
import type { FileStat } from "../../api/schema/files.ts";

/** envd's `FileType` names. */
const TYPES: Record<FileStat["type"], string> = { file: "FILE_TYPE_FILE", dir: "FILE_TYPE_DIRECTORY", symlink: "FILE_TYPE_SYMLINK", other: "FILE_TYPE_UNSPECIFIED" };

/** `-rwxr-xr-x`-style permissions of a mode and type. */
export function permissionString(type: FileStat["type"], mode: number): string {
  const lead = type === "dir" ? "d" : type === "symlink" ? "L" : type === "other" ? "?" : "-";
  let s = lead;
  for (let shift = 6; shift >= 0; shift -= 3) {
    const bits = (mode >> shift) & 7;
    s += (bits & 4 ? "r" : "-") + (bits & 2 ? "w" : "-") + (bits & 1 ? "x" : "-");
  }
  return s;
}

function owner(id: number): string {
  return id === 0 ? "root" : String(id);
}

/** One entry as envd's `EntryInfo` JSON. */
export function entryInfo(st: FileStat): Record<string, unknown> {
  return {
    name: st.name,
    type: TYPES[st.type],
    path: st.path,
    size: String(st.size),
    mode: st.mode,
    permissions: permissionString(st.type, st.mode),
    owner: owner(st.uid),
    group: owner(st.gid),
    modifiedTime: new Date(Math.floor(st.mtime_ms)).toISOString(),
    ...(st.link_target !== undefined ? { symlinkTarget: st.link_target } : {}),
  };
}

/** The `WriteInfo` of a written file, as `POST /files` returns it. */
export function writeInfo(path: string): { name: string; type: "file"; path: string } {
  return { name: path.slice(path.lastIndexOf("/") + 1), type: "file", path };
}

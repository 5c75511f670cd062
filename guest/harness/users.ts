/**
 * @module guest/harness/users
 * `--user` / the image's `User` resolved the way Docker (runc) does, against
 * the image's own /etc/passwd and /etc/group:
 * - `name`: its uid and primary gid from passwd (an unknown name is an error);
 * - `uid`: its passwd entry when there is one, else gid 0;
 * - `user:group` / `user:gid`: the group replaces the primary gid (an
 *   unknown group name is an error; a number is taken as is);
 * - supplementary groups: every /etc/group entry that lists the user's name,
 *   plus the primary gid; none for a uid without a passwd entry.
 * HOME comes from the passwd entry (`/` without one), unless the caller set it.
 */

/** Resolved credentials. */
export interface Credentials {
  uid: number;
  gid: number;
  /** Supplementary groups, the primary gid first. */
  groups: number[];
  home: string;
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

const NUMBER = /^\d+$/;

/** Parse /etc/passwd (malformed lines are skipped, as libc does). */
export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f.length < 7 || !NUMBER.test(f[2]!) || !NUMBER.test(f[3]!)) continue;
    out.push({ name: f[0]!, uid: Number(f[2]), gid: Number(f[3]), home: f[5]! });
  }
  return out;
}

/** Parse /etc/group. */
export function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f.length < 4 || !NUMBER.test(f[2]!)) continue;
    out.push({ name: f[0]!, gid: Number(f[2]), members: f[3]!.split(",").filter(Boolean) });
  }
  return out;
}

/** Resolve `spec` against the files' contents; throws an Error that names what is missing. */
export function resolveUser(spec: string, passwdText: string, groupText: string): Credentials {
  const [userPart, groupPart] = spec.split(":", 2) as [string, string | undefined];
  const passwd = parsePasswd(passwdText);
  const entry = NUMBER.test(userPart) ? passwd.find((p) => p.uid === Number(userPart)) : passwd.find((p) => p.name === userPart);
  if (!entry && !NUMBER.test(userPart)) throw new Error(`unable to find user ${userPart}: no matching entries in the image's /etc/passwd`);
  const uid = entry?.uid ?? Number(userPart);
  const groups = parseGroup(groupText);
  let gid = entry?.gid ?? 0;
  if (groupPart !== undefined) {
    if (NUMBER.test(groupPart)) gid = Number(groupPart);
    else {
      const g = groups.find((x) => x.name === groupPart);
      if (!g) throw new Error(`unable to find group ${groupPart}: no matching entries in the image's /etc/group`);
      gid = g.gid;
    }
  }
  const supplementary = entry ? groups.filter((g) => g.members.includes(entry.name)).map((g) => g.gid) : [];
  return { uid, gid, groups: [...new Set([gid, ...supplementary])], home: entry?.home || "/" };
}

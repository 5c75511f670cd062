/**
 * Read an ext4 image without mounting it, through `debugfs -R`.
 */

/** One `ls -l` row. */
export interface Ext4Entry {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  inode: number;
}

async function debugfs(image: string, cmd: string): Promise<string> {
  const p = Bun.spawn(["debugfs", "-R", cmd, image], { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`debugfs -R '${cmd}' ${image} exited ${code}: ${err}`);
  if (/not found|No such/i.test(err)) throw new Error(`debugfs -R '${cmd}': ${err}`);
  return out;
}

/** `ls -l` of a directory in the image. */
export async function ext4Ls(image: string, dir: string): Promise<Ext4Entry[]> {
  const out = await debugfs(image, `ls -l "${dir}"`);
  const rows: Ext4Entry[] = [];
  for (const line of out.split("\n")) {
    const m = /^\s*(\d+)\s+(\d+)\s+\(\d+\)\s+(\d+)\s+(\d+)\s+(\d+)\s+\S+\s+\S+\s+(.+)$/.exec(line);
    if (m) rows.push({ inode: Number(m[1]), mode: Number.parseInt(m[2]!, 8), uid: Number(m[3]), gid: Number(m[4]), size: Number(m[5]), name: m[6]! });
  }
  return rows;
}

/** One entry by path. */
export async function ext4Stat(image: string, path: string): Promise<Ext4Entry | undefined> {
  const i = path.lastIndexOf("/");
  const rows = await ext4Ls(image, path.slice(0, i) || "/");
  return rows.find((r) => r.name === path.slice(i + 1));
}

/** A file's content. */
export function ext4Cat(image: string, path: string): Promise<string> {
  return debugfs(image, `cat "${path}"`);
}

/** `stat` output (for device numbers, label checks). */
export function ext4Raw(image: string, cmd: string): Promise<string> {
  return debugfs(image, cmd);
}

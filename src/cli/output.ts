/**
 * @module cli/output
 * Data output on stdout: plain lines, tables and JSON.
 */

/** Write one line of data to stdout. */
export function out(line = ""): void {
  process.stdout.write(`${line}\n`);
}

/** Write a value as pretty JSON on stdout (the one `--json` path). */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/**
 * Render rows as fixed-width columns, as the spec's tables show them
 * (`NAME` padded to 20, further columns padded to their declared width).
 */
export function printTable(columns: { title: string; width: number }[], rows: string[][]): void {
  const render = (cells: string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(Math.max(columns[i]!.width, cell.length + 1))))
      .join("")
      .trimEnd();
  out(render(columns.map((c) => c.title)));
  for (const row of rows) out(render(row));
}

/**
 * Write raw output bytes and resolve once the stream can take more: awaited
 * per chunk, a slow or stopped reader of our stdout (`| less`, a full pipe)
 * stops us reading the daemon's stream, which in turn holds back the
 * process that produces it (flow control, see daemon/instances/exec.ts).
 */
export function writeData(stream: NodeJS.WriteStream, bytes: Uint8Array): Promise<void> {
  return new Promise((resolve) => {
    if (stream.write(bytes)) resolve();
    else stream.once("drain", resolve);
  });
}

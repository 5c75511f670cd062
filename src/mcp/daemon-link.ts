/**
 * @module mcp/daemon-link
 * The MCP server's connection to aegisd: the typed socket client the CLI
 * uses, plus "start aegisd when it is not running" (what `aegis up` does).
 * A call that finds no daemon starts it and is retried once; that is safe
 * for every call because DaemonNotRunning is raised only when the connection
 * is refused, before anything reached the daemon.
 */
import { AegisClient, DaemonNotRunning } from "../api/client.ts";
import { startDaemon } from "../control/daemon-process.ts";
import type { StatePaths } from "../paths.ts";

/** Writes one diagnostic line to stderr (stdout carries MCP only). */
export type Note = (line: string) => void;

/** aegisd as the MCP server sees it. */
export class DaemonLink {
  readonly client: AegisClient;
  private starting: Promise<void> | null = null;

  constructor(
    private readonly paths: StatePaths,
    /** Diagnostics to stderr. */
    readonly note: Note,
  ) {
    this.client = new AegisClient(paths.socket);
  }

  /** Start aegisd unless it runs (one start at a time). */
  ensureRunning(): Promise<void> {
    this.starting ??= startDaemon(this.paths)
      .then(({ pid, already }) => {
        if (!already) this.note(`aegisd started (pid ${pid}, AEGIS_HOME ${this.paths.home})`);
      })
      .finally(() => {
        this.starting = null;
      });
    return this.starting;
  }

  /** Run `fn` against the daemon, starting it first when nothing answers. */
  async call<T>(fn: (client: AegisClient) => Promise<T>): Promise<T> {
    try {
      return await fn(this.client);
    } catch (err) {
      if (!(err instanceof DaemonNotRunning)) throw err;
      await this.ensureRunning();
      return fn(this.client);
    }
  }
}

/**
 * @module daemon/db
 * The one place that opens the SQLite registry (STYLE rule 21): strict mode
 * (missing named parameters are errors), WAL, a busy timeout and foreign keys,
 * with numbered migrations tracked in `PRAGMA user_version`. Only aegisd opens
 * the database; the CLI always goes through the socket.
 */
import { Database } from "bun:sqlite";
import { migrations } from "./registry/migrations.ts";

/** Open (creating if needed) and migrate the registry database. */
export function openDatabase(path: string): Database {
  const db = new Database(path, { strict: true, create: true });
  db.run("PRAGMA journal_mode = WAL");
  db.run("PRAGMA busy_timeout = 5000");
  db.run("PRAGMA foreign_keys = ON");
  db.run("PRAGMA synchronous = NORMAL");
  migrate(db);
  return db;
}

/** Apply every migration newer than the database's `user_version`, each in its own transaction. */
export function migrate(db: Database): void {
  const current = (db.query("PRAGMA user_version").get() as { user_version: number }).user_version;
  if (current > migrations.length) {
    throw new Error(
      `registry schema version ${current} is newer than this aegis understands (${migrations.length}); upgrade aegis or use another AEGIS_HOME`,
    );
  }
  for (let version = current + 1; version <= migrations.length; version++) {
    const sql = migrations[version - 1]!;
    db.transaction(() => {
      db.run(sql);
      db.run(`PRAGMA user_version = ${version}`);
    })();
  }
}

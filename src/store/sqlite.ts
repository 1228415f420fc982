import { Database } from "bun:sqlite";
import { drizzle, type BunSQLiteDatabase } from "drizzle-orm/bun-sqlite";
import { migrate } from "drizzle-orm/bun-sqlite/migrator";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";

export type Durability = "full" | "normal";

/** How long a connection waits for another process's write lock before failing. */
const BUSY_TIMEOUT_MS = 10_000;
const MIGRATE_ATTEMPTS_MAX = 5;

/**
 * Opens a SQLite database in WAL mode, so readers never block the writer and several
 * processes can share the file, and applies the Drizzle migrations in `migrationsFolder`.
 *
 * Durability "full" fsyncs the WAL on every commit: use it where a commit is a promise
 * to a client (the log). "normal" may lose the last commits on power loss, never on a
 * process crash, and never half a transaction: enough for state that is rebuilt from
 * the log, because its progress rolls back with it.
 */
export function openSqlite<S extends Record<string, unknown>>(
  path: string,
  schema: S,
  migrationsFolder: string,
  durability: Durability,
): { sqlite: Database; db: BunSQLiteDatabase<S> } {
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
  const sqlite = new Database(path, { create: true, strict: true });
  sqlite.run(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
  sqlite.run("PRAGMA journal_mode = WAL");
  sqlite.run(`PRAGMA synchronous = ${durability === "full" ? "FULL" : "NORMAL"}`);
  const db = drizzle(sqlite, { schema });
  migrateWithRetry(db, migrationsFolder);
  return { sqlite, db };
}

// Drizzle's migrator reads the applied migrations before it takes the write lock, so
// two processes starting on a new DATA_DIR can both try to create the tables. The one
// that loses fails on "already exists"; by then the winner has recorded the
// migration, and a second attempt sees it.
function migrateWithRetry(db: BunSQLiteDatabase<Record<string, unknown>>, migrationsFolder: string): void {
  for (let attempt = 1; ; attempt++) {
    try {
      migrate(db, { migrationsFolder });
      return;
    } catch (error) {
      if (attempt >= MIGRATE_ATTEMPTS_MAX) throw error;
      Bun.sleepSync(50 * attempt);
    }
  }
}

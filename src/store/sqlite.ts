import { Database } from "bun:sqlite";
import { drizzle, type BunSQLiteDatabase } from "drizzle-orm/bun-sqlite";
import { migrate } from "drizzle-orm/bun-sqlite/migrator";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";

export type Durability = "full" | "normal";

export interface OpenOptions {
  /**
   * "full" fsyncs the WAL on every commit: for connections whose commits are promises
   * to a client (appends to the log). "normal" may lose the last commits on power loss,
   * never on a process crash, and never half a transaction: enough for state that is
   * rebuilt from the log, because its progress rolls back with it. In WAL mode an fsync
   * by any connection also makes every earlier commit durable.
   */
  durability: Durability;
  /**
   * How long a statement waits for another connection's write lock before failing
   * with SQLITE_BUSY. A connection on an event loop that must not block uses 0 and
   * retries later instead.
   */
  busyTimeoutMs: number;
}

/** A Drizzle migrations folder and the table that records which of it ran. */
export interface Migrations {
  folder: string;
  table: string;
}

const MIGRATE_ATTEMPTS_MAX = 5;

/**
 * Opens a SQLite database in WAL mode, so readers never block the writer and several
 * connections (threads, processes) can share the file.
 */
export function openSqlite(path: string, options: OpenOptions): Database {
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
  const sqlite = new Database(path, { create: true, strict: true });
  sqlite.run(`PRAGMA busy_timeout = ${options.busyTimeoutMs}`);
  sqlite.run("PRAGMA journal_mode = WAL");
  sqlite.run(`PRAGMA synchronous = ${options.durability === "full" ? "FULL" : "NORMAL"}`);
  return sqlite;
}

/**
 * Applies Drizzle migrations. Drizzle's migrator reads the applied migrations before
 * it takes the write lock, so two connections starting on a new file can both try to
 * create the tables. The one that loses fails on "already exists"; by then the winner
 * has recorded the migration, and a second attempt sees it.
 */
export function applyMigrations<S extends Record<string, unknown>>(sqlite: Database, schema: S, migrations: Migrations): BunSQLiteDatabase<S> {
  const db = drizzle(sqlite, { schema });
  for (let attempt = 1; ; attempt++) {
    try {
      migrate(db, { migrationsFolder: migrations.folder, migrationsTable: migrations.table });
      return db;
    } catch (error) {
      if (attempt >= MIGRATE_ATTEMPTS_MAX) throw error;
      Bun.sleepSync(50 * attempt);
    }
  }
}

import type { Database } from "bun:sqlite";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { and, eq, sql } from "drizzle-orm";
import type { BunSQLiteDatabase } from "drizzle-orm/bun-sqlite";
import { join } from "node:path";
import { OutboxRecordsSchema } from "../gen/depositaja/v1/runtime_pb.js";
import type { ProduceRecord, RecordPosition, TopicPartition } from "../log/log.js";
import type { TimerRow } from "../runtime/timers.js";
import * as schema from "./schema.js";
import { applyMigrations, openSqlite } from "./sqlite.js";

const { appliedEvents, outbox, progress, tableRows, timers } = schema;

export interface TableRow {
  key: string;
  value: Uint8Array;
  version: number;
}

export interface AppliedId {
  key: string;
  eventId: string;
  fingerprint: string;
  outcome: string;
  /** What the group recorded of the decision, and the ledger entry it wrote, if any. */
  detail?: Uint8Array;
  seq?: number;
  recordedMs?: number;
}

/** An applied id as read back. */
export interface AppliedRow {
  eventId: string;
  fingerprint: string;
  outcome: string;
  detail: Uint8Array | null;
}

/** What a batch changes in the store, written in one transaction. */
export interface StoreBatch {
  /** The progress the batch started from; a different stored value means someone else moved it. */
  from: RecordPosition[];
  to: RecordPosition[];
  rows: TableRow[];
  applied: AppliedId[];
  /** Timers set or cleared, in order. */
  timers?: TimerRow[];
}

export interface OutboxEntry {
  id: number;
  partition: number;
  records: ProduceRecord[];
}

/** Another process applied the same input first; the batch was not written. */
export class StaleProgressError extends Error {
  readonly retryable = true;
  constructor(position: TopicPartition, expected: number, actual: number) {
    super(`progress of ${position.topic}/${position.partition} is ${actual}, expected ${expected}`);
    this.name = "StaleProgressError";
  }
}

const STORE_MIGRATIONS = { folder: join(import.meta.dir, "migrations"), table: "__drizzle_migrations_store" };
/** bun:sqlite binds Buffers without a copy; a Uint8Array view is wrapped, not copied. */
const bytes = (value: Uint8Array) => Buffer.from(value.buffer, value.byteOffset, value.byteLength);

const appliedParams = (owner: string, a: AppliedId) => ({
  owner,
  key: a.key,
  eventId: a.eventId,
  fingerprint: a.fingerprint,
  outcome: a.outcome,
  detail: a.detail === undefined || a.detail.byteLength === 0 ? null : bytes(a.detail),
  seq: a.seq ?? null,
  recordedMs: a.recordedMs ?? null,
});

/**
 * The state of a process's processor groups and views, through Drizzle. Every method
 * is synchronous: bun:sqlite transactions cannot span an await, and a commit that
 * cannot be interleaved is exactly what a batch needs.
 *
 * It works on a connection it is given: on the embedded log, the log's own, so a
 * batch's state and its output records commit together; on Kafka, DATA_DIR/state.db.
 */
export class StateStore {
  readonly db: BunSQLiteDatabase<typeof schema>;
  // The statements of every record's path, prepared once: building Drizzle queries
  // anew per record costs more than running them.
  private readonly selectRow;
  private readonly selectProgress;
  private readonly selectApplied;
  private readonly selectEntries;
  private readonly selectEntryAt;
  private readonly upsertRow;
  private readonly upsertNewerRow;
  private readonly upsertProgress;
  private readonly insertApplied;
  private readonly insertOutbox;
  private readonly selectOutbox;
  private readonly selectOutboxRecords;
  private readonly deleteOutboxRow;
  private readonly selectDataVersion;
  private readonly selectTimer;
  private readonly upsertTimer;
  private readonly deleteTimer;
  private readonly selectDueTimers;

  constructor(readonly sqlite: Database) {
    this.db = applyMigrations(sqlite, schema, STORE_MIGRATIONS);
    const p = (name: string) => sql.placeholder(name);
    this.selectRow = this.db
      .select({ key: tableRows.key, value: tableRows.value, version: tableRows.version })
      .from(tableRows)
      .where(and(eq(tableRows.owner, p("owner")), eq(tableRows.key, p("key"))))
      .prepare();
    this.selectProgress = this.db
      .select({ nextOffset: progress.nextOffset })
      .from(progress)
      .where(and(eq(progress.owner, p("owner")), eq(progress.topic, p("topic")), eq(progress.partition, p("partition"))))
      .prepare();
    this.selectApplied = this.db
      .select({ eventId: appliedEvents.eventId, fingerprint: appliedEvents.fingerprint, outcome: appliedEvents.outcome, detail: appliedEvents.detail })
      .from(appliedEvents)
      .where(and(eq(appliedEvents.owner, p("owner")), eq(appliedEvents.key, p("key")), eq(appliedEvents.eventId, p("eventId"))))
      .prepare();
    const entryColumns = { eventId: appliedEvents.eventId, fingerprint: appliedEvents.fingerprint, outcome: appliedEvents.outcome, detail: appliedEvents.detail };
    this.selectEntries = this.db
      .select(entryColumns)
      .from(appliedEvents)
      .where(and(eq(appliedEvents.owner, p("owner")), eq(appliedEvents.key, p("key")), sql`${appliedEvents.seq} IS NOT NULL`, sql`${appliedEvents.seq} < ${p("before")}`))
      .orderBy(sql`${appliedEvents.seq} DESC`)
      .limit(p("limit"))
      .prepare();
    this.selectEntryAt = this.db
      .select(entryColumns)
      .from(appliedEvents)
      .where(and(eq(appliedEvents.owner, p("owner")), eq(appliedEvents.key, p("key")), sql`${appliedEvents.seq} IS NOT NULL`, sql`${appliedEvents.recordedMs} <= ${p("atMs")}`))
      .orderBy(sql`${appliedEvents.seq} DESC`)
      .limit(1)
      .prepare();
    const row = { owner: p("owner"), key: p("key"), value: p("value"), version: p("version") };
    const replace = { value: sql`excluded.value`, version: sql`excluded.version` };
    this.upsertRow = this.db.insert(tableRows).values(row).onConflictDoUpdate({ target: [tableRows.owner, tableRows.key], set: replace }).prepare();
    this.upsertNewerRow = this.db
      .insert(tableRows)
      .values(row)
      .onConflictDoUpdate({ target: [tableRows.owner, tableRows.key], set: replace, setWhere: sql`${tableRows.version} < excluded.version` })
      .prepare();
    this.upsertProgress = this.db
      .insert(progress)
      .values({ owner: p("owner"), topic: p("topic"), partition: p("partition"), nextOffset: p("nextOffset") })
      .onConflictDoUpdate({ target: [progress.owner, progress.topic, progress.partition], set: { nextOffset: sql`excluded.next_offset` } })
      .prepare();
    // Ids already known stay as they are: the first decision for an id is the one.
    this.insertApplied = this.db
      .insert(appliedEvents)
      .values({ owner: p("owner"), key: p("key"), eventId: p("eventId"), fingerprint: p("fingerprint"), outcome: p("outcome"), detail: p("detail"), seq: p("seq"), recordedMs: p("recordedMs") })
      .onConflictDoNothing()
      .prepare();
    this.insertOutbox = this.db.insert(outbox).values({ owner: p("owner"), partition: p("partition"), records: p("records") }).prepare();
    this.selectOutbox = this.db
      .select({ id: outbox.id, partition: outbox.partition })
      .from(outbox)
      .where(eq(outbox.owner, p("owner")))
      .orderBy(outbox.id)
      .prepare();
    this.selectOutboxRecords = this.db.select({ records: outbox.records }).from(outbox).where(eq(outbox.id, p("id"))).prepare();
    this.deleteOutboxRow = this.db.delete(outbox).where(eq(outbox.id, p("id"))).prepare();
    this.selectDataVersion = sqlite.prepare<{ data_version: number }, []>("PRAGMA data_version");
    const timerKey = and(eq(timers.owner, p("owner")), eq(timers.key, p("key")), eq(timers.timerId, p("timerId")));
    this.selectTimer = this.db.select({ dueMs: timers.dueMs }).from(timers).where(timerKey).prepare();
    this.upsertTimer = this.db
      .insert(timers)
      .values({ owner: p("owner"), key: p("key"), timerId: p("timerId"), partition: p("partition"), dueMs: p("dueMs") })
      .onConflictDoUpdate({ target: [timers.owner, timers.key, timers.timerId], set: { dueMs: sql`excluded.due_ms`, partition: sql`excluded.partition` } })
      .prepare();
    this.deleteTimer = this.db.delete(timers).where(timerKey).prepare();
    this.selectDueTimers = this.db
      .select({ key: timers.key, timerId: timers.timerId, partition: timers.partition, dueMs: timers.dueMs })
      .from(timers)
      .where(and(eq(timers.owner, p("owner")), eq(timers.partition, p("partition")), sql`${timers.dueMs} <= ${p("nowMs")}`))
      .orderBy(timers.dueMs)
      .limit(p("limit"))
      .prepare();
  }

  /** A state store in a file of its own: DATA_DIR/state.db for processors on Kafka, views.db for views. */
  static open(dataDir: string, file = "state.db"): StateStore {
    return new StateStore(openSqlite(join(dataDir, file), { durability: "normal", busyTimeoutMs: 10_000 }));
  }

  row(owner: string, key: string): TableRow | undefined {
    const row = this.selectRow.get({ owner, key });
    return row ? { key: row.key, value: new Uint8Array(row.value), version: row.version } : undefined;
  }

  /** SQLite's counter of commits by other connections to this database: changes mean news. */
  dataVersion(): number {
    return this.selectDataVersion.get()!.data_version;
  }

  /** The next offset to apply; 0 for a partition never seen. */
  progress(owner: string, tp: TopicPartition): number {
    return this.selectProgress.get({ owner, topic: tp.topic, partition: tp.partition })?.nextOffset ?? 0;
  }

  appliedEvent(owner: string, key: string, eventId: string): AppliedRow | undefined {
    return this.selectApplied.get({ owner, key, eventId });
  }

  /** The applied ids of `key` that wrote a ledger entry, newest first, below entry `before`. */
  entries(owner: string, key: string, before: number, limit: number): AppliedRow[] {
    return this.selectEntries.all({ owner, key, before, limit });
  }

  /** The newest entry of `key` recorded at or before `atMs`. */
  entryAt(owner: string, key: string, atMs: number): AppliedRow | undefined {
    return this.selectEntryAt.get({ owner, key, atMs });
  }

  /** When a pending timer of `key` is due, if it is pending. */
  timer(owner: string, key: string, timerId: string): number | undefined {
    return this.selectTimer.get({ owner, key, timerId })?.dueMs;
  }

  /** The pending timers of one partition due by `nowMs`, the earliest first. */
  dueTimers(owner: string, partition: number, nowMs: number, limit: number): TimerRow[] {
    return this.selectDueTimers.all({ owner, partition, nowMs, limit });
  }

  /** Sets and clears timers, in order. Call it inside `transaction`. */
  writeTimers(owner: string, changes: readonly TimerRow[]): void {
    for (const t of changes) {
      if (t.dueMs === null) this.deleteTimer.run({ owner, key: t.key, timerId: t.timerId });
      else this.upsertTimer.run({ owner, key: t.key, timerId: t.timerId, partition: t.partition, dueMs: t.dueMs });
    }
  }

  /** Runs `work` in one immediate transaction (the write lock taken up front). */
  transaction<T>(work: () => T): T {
    return this.sqlite.transaction(work).immediate();
  }

  /**
   * Writes a batch: table rows, applied ids and progress. Call it inside
   * `transaction`. Throws StaleProgressError, before writing anything, if another
   * process moved the progress of one of the batch's partitions.
   */
  writeBatch(owner: string, batch: StoreBatch): void {
    for (const from of batch.from) {
      const actual = this.progress(owner, from);
      if (actual !== from.offset) throw new StaleProgressError(from, from.offset, actual);
    }
    for (const row of batch.rows) this.upsertRow.run({ owner, key: row.key, value: bytes(row.value), version: row.version });
    for (const a of batch.applied) this.insertApplied.run(appliedParams(owner, a));
    this.writeTimers(owner, batch.timers ?? []);
    this.writeProgress(owner, batch.to);
  }

  /**
   * Merges changelog rows into a table (a view's, or a group's being restored): a row
   * replaces the stored one only if its version is newer, so duplicated or reordered
   * changelog records never move a table backwards. Applied ids are added, and the
   * positions `to` move, in the same transaction.
   */
  merge(owner: string, rows: TableRow[], applied: AppliedId[], to: RecordPosition[], timerChanges: readonly TimerRow[] = []): void {
    this.transaction(() => {
      for (const row of rows) this.upsertNewerRow.run({ owner, key: row.key, value: bytes(row.value), version: row.version });
      for (const a of applied) this.insertApplied.run(appliedParams(owner, a));
      this.writeTimers(owner, timerChanges);
      this.writeProgress(owner, to);
    });
  }

  writeProgress(owner: string, positions: RecordPosition[]): void {
    for (const p of positions) this.upsertProgress.run({ owner, topic: p.topic, partition: p.partition, nextOffset: p.offset });
  }

  /** Adds a batch's records to the outbox of one source partition. Call it inside `transaction`. */
  addOutbox(owner: string, partition: number, records: ProduceRecord[]): void {
    const encoded = create(OutboxRecordsSchema, {
      records: records.map((r) => ({ topic: r.topic, key: r.key, partition: r.partition ?? -1, value: r.value, headers: r.headers ?? {} })),
    });
    this.insertOutbox.run({ owner, partition, records: bytes(toBinary(OutboxRecordsSchema, encoded)) });
  }

  /**
   * The outbox of `owner` for the input partitions in `held`, oldest first, up to about
   * `recordsMax` records (an entry is never split, so at least one comes).
   */
  outbox(owner: string, held: ReadonlySet<number>, recordsMax: number): OutboxEntry[] {
    const entries: OutboxEntry[] = [];
    let size = 0;
    for (const { id, partition } of this.selectOutbox.all({ owner })) {
      if (!held.has(partition)) continue;
      const records = this.outboxRecords(id);
      if (entries.length > 0 && size + records.length > recordsMax) break;
      entries.push({ id, partition, records });
      size += records.length;
    }
    return entries;
  }

  private outboxRecords(id: number): ProduceRecord[] {
    const row = this.selectOutboxRecords.get({ id })!;
    return fromBinary(OutboxRecordsSchema, row.records).records.map((r) => ({
        topic: r.topic,
        key: r.key,
        value: r.value,
        headers: r.headers,
      ...(r.partition >= 0 ? { partition: r.partition } : {}),
    }));
  }

  /** Forgets outbox entries once the log has stored them. Call it inside `transaction`. */
  deleteOutbox(ids: number[]): void {
    for (const id of ids) this.deleteOutboxRow.run({ id });
  }

  /** Drops the outbox of one source partition: the changelog already has newer news. */
  deleteOutboxOf(owner: string, partition: number): void {
    this.db.delete(outbox).where(and(eq(outbox.owner, owner), eq(outbox.partition, partition))).run();
  }

  /**
   * Forgets what `owner` holds of one partition (its wallets' rows, applied ids and
   * timers, the outbox, and the progress on `topics`), to rebuild it from the changelog. A rare
   * path: it reads every key of the owner to find the partition's.
   */
  dropPartition(owner: string, partition: number, partitionOf: (key: string) => number, topics: string[]): void {
    this.transaction(() => {
      for (const table of [tableRows, appliedEvents]) {
        const keys = this.db.selectDistinct({ key: table.key }).from(table).where(eq(table.owner, owner)).all().map((r) => r.key).filter((key) => partitionOf(key) === partition);
        for (const key of keys) this.db.delete(table).where(and(eq(table.owner, owner), eq(table.key, key))).run();
      }
      this.db.delete(outbox).where(and(eq(outbox.owner, owner), eq(outbox.partition, partition))).run();
      this.db.delete(timers).where(and(eq(timers.owner, owner), eq(timers.partition, partition))).run();
      for (const topic of topics) this.db.delete(progress).where(and(eq(progress.owner, owner), eq(progress.topic, topic), eq(progress.partition, partition))).run();
    });
  }

  /** Forgets everything `owner` holds (its table, applied ids, timers, progress, outbox), to rebuild it. */
  drop(owner: string): void {
    this.transaction(() => {
      for (const table of [tableRows, appliedEvents, progress, outbox, timers]) this.db.delete(table).where(eq(table.owner, owner)).run();
    });
  }

  close(): void {
    this.sqlite.close();
  }
}

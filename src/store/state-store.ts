import type { Database } from "bun:sqlite";
import { and, asc, eq, inArray, sql } from "drizzle-orm";
import type { BunSQLiteDatabase } from "drizzle-orm/bun-sqlite";
import { join } from "node:path";
import type { Headers, RecordPosition, TopicPartition } from "../log/log.js";
import * as schema from "./schema.js";
import { openSqlite } from "./sqlite.js";

const { appliedEvents, outbox, progress, rejections, tableRows } = schema;

export interface TableRow {
  key: string;
  value: Uint8Array;
  version: number;
}

export interface AppliedEvent {
  key: string;
  eventId: string;
  fingerprint: string;
  outcome: string;
  position: RecordPosition;
}

export interface Rejection {
  position: RecordPosition;
  key: string;
  code: string;
  detail: string;
}

export interface OutboxRecord {
  id: number;
  topic: string;
  partition: number | null;
  key: string;
  value: Uint8Array;
  headers: Headers;
}

/** What one processed batch commits, all or nothing. */
export interface BatchCommit {
  /** The progress the batch was computed from; the commit fails if it moved. */
  from: RecordPosition[];
  /** The progress after the batch. */
  to: RecordPosition[];
  rows: TableRow[];
  applied: AppliedEvent[];
  rejections: Rejection[];
  outbox: Omit<OutboxRecord, "id">[];
}

/** Another process applied some of the same records first; the batch was dropped. */
export class StaleProgressError extends Error {
  constructor(position: TopicPartition, expected: number, actual: number) {
    super(`progress of ${position.topic}/${position.partition} is ${actual}, expected ${expected}`);
    this.name = "StaleProgressError";
  }
}

const bytes = (value: Uint8Array) => Buffer.from(value.buffer, value.byteOffset, value.byteLength);

/**
 * The state of a process's processor groups and views (DATA_DIR/state.db), through
 * Drizzle. Every method is synchronous: bun:sqlite transactions cannot span an await,
 * and a commit that cannot be interleaved is exactly what a batch needs.
 */
export class StateStore {
  readonly sqlite: Database;
  readonly db: BunSQLiteDatabase<typeof schema>;

  // The reads of every record's path, prepared once: building Drizzle queries anew per
  // record costs more than running them.
  private readonly selectRow;
  private readonly selectProgress;
  private readonly selectApplied;
  private readonly upsertRow;
  private readonly upsertNewerRow;
  private readonly upsertProgress;
  private readonly insertApplied;
  private readonly insertAppliedIfNew;
  private readonly insertOutbox;

  constructor(path: string) {
    ({ sqlite: this.sqlite, db: this.db } = openSqlite(path, schema, join(import.meta.dir, "migrations"), "normal"));
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
      .select({ fingerprint: appliedEvents.fingerprint, outcome: appliedEvents.outcome })
      .from(appliedEvents)
      .where(and(eq(appliedEvents.owner, p("owner")), eq(appliedEvents.key, p("key")), eq(appliedEvents.eventId, p("eventId"))))
      .prepare();
    this.upsertRow = this.db
      .insert(tableRows)
      .values({ owner: p("owner"), key: p("key"), value: p("value"), version: p("version") })
      .onConflictDoUpdate({ target: [tableRows.owner, tableRows.key], set: { value: sql`excluded.value`, version: sql`excluded.version` } })
      .prepare();
    this.upsertNewerRow = this.db
      .insert(tableRows)
      .values({ owner: p("owner"), key: p("key"), value: p("value"), version: p("version") })
      .onConflictDoUpdate({
        target: [tableRows.owner, tableRows.key],
        set: { value: sql`excluded.value`, version: sql`excluded.version` },
        setWhere: sql`${tableRows.version} < excluded.version`,
      })
      .prepare();
    this.upsertProgress = this.db
      .insert(progress)
      .values({ owner: p("owner"), topic: p("topic"), partition: p("partition"), nextOffset: p("nextOffset") })
      .onConflictDoUpdate({ target: [progress.owner, progress.topic, progress.partition], set: { nextOffset: sql`excluded.next_offset` } })
      .prepare();
    this.insertApplied = this.db
      .insert(appliedEvents)
      .values({
        owner: p("owner"), key: p("key"), eventId: p("eventId"), fingerprint: p("fingerprint"), outcome: p("outcome"),
        topic: p("topic"), partition: p("partition"), offset: p("offset"),
      })
      .prepare();
    this.insertAppliedIfNew = this.db
      .insert(appliedEvents)
      .values({
        owner: p("owner"), key: p("key"), eventId: p("eventId"), fingerprint: p("fingerprint"), outcome: p("outcome"),
        topic: p("topic"), partition: p("partition"), offset: p("offset"),
      })
      .onConflictDoNothing()
      .prepare();
    this.insertOutbox = this.db
      .insert(outbox)
      .values({ owner: p("owner"), topic: p("topic"), partition: p("partition"), key: p("key"), value: p("value"), headers: p("headers") })
      .prepare();
  }

  static open(dataDir: string): StateStore {
    return new StateStore(join(dataDir, "state.db"));
  }

  row(owner: string, key: string): TableRow | undefined {
    const row = this.selectRow.get({ owner, key });
    return row ? { key: row.key, value: new Uint8Array(row.value), version: row.version } : undefined;
  }

  /** The next offset to apply; 0 for a partition never seen. */
  progress(owner: string, tp: TopicPartition): number {
    return this.selectProgress.get({ owner, topic: tp.topic, partition: tp.partition })?.nextOffset ?? 0;
  }

  appliedEvent(owner: string, key: string, eventId: string): { fingerprint: string; outcome: string } | undefined {
    return this.selectApplied.get({ owner, key, eventId });
  }

  /**
   * Commits a processed batch in one transaction: table rows, applied event ids,
   * rejections, outbox and progress. Throws StaleProgressError, changing nothing, if
   * another process moved the progress of one of the batch's partitions.
   */
  commitBatch(owner: string, batch: BatchCommit): void {
    this.sqlite.transaction(() => {
      for (const from of batch.from) {
        const actual = this.progress(owner, from);
        if (actual !== from.offset) throw new StaleProgressError(from, from.offset, actual);
      }
      this.writeRows(owner, batch.rows);
      for (const a of batch.applied) {
        this.insertApplied.run({
          owner, key: a.key, eventId: a.eventId, fingerprint: a.fingerprint, outcome: a.outcome,
          topic: a.position.topic, partition: a.position.partition, offset: a.position.offset,
        });
      }
      for (const r of batch.rejections) {
        this.db.insert(rejections).values({
          owner, topic: r.position.topic, partition: r.position.partition, offset: r.position.offset,
          key: r.key, code: r.code, detail: r.detail,
        }).onConflictDoNothing().run();
      }
      for (const o of batch.outbox) {
        this.insertOutbox.run({
          owner, topic: o.topic, partition: o.partition, key: o.key, value: bytes(o.value),
          headers: Object.keys(o.headers).length > 0 ? JSON.stringify(o.headers) : null,
        });
      }
      this.writeProgress(owner, batch.to);
    }).immediate();
  }

  /**
   * Merges changelog rows into a table (a view's, or a group's being restored): a row
   * replaces the stored one only if its version is newer, so duplicated or reordered
   * changelog records never move a table backwards. The changelog positions `to`
   * move in the same transaction.
   */
  mergeRows(owner: string, rows: TableRow[], to: RecordPosition[]): void {
    this.sqlite.transaction(() => {
      for (const row of rows) this.upsertNewerRow.run({ owner, key: row.key, value: bytes(row.value), version: row.version });
      this.writeProgress(owner, to);
    }).immediate();
  }

  /**
   * Merges what a changelog held into a group's table: rows newest-version-wins,
   * applied ids added (ids already known stay as they are), and the changelog
   * positions `to`, all in one transaction.
   */
  mergeChangelog(owner: string, rows: TableRow[], applied: AppliedEvent[], to: RecordPosition[]): void {
    this.sqlite.transaction(() => {
      for (const row of rows) this.upsertNewerRow.run({ owner, key: row.key, value: bytes(row.value), version: row.version });
      for (const a of applied) {
        this.insertAppliedIfNew.run({
          owner, key: a.key, eventId: a.eventId, fingerprint: a.fingerprint, outcome: a.outcome,
          topic: a.position.topic, partition: a.position.partition, offset: a.position.offset,
        });
      }
      this.writeProgress(owner, to);
    }).immediate();
  }

  private writeRows(owner: string, rows: TableRow[]): void {
    for (const row of rows) this.upsertRow.run({ owner, key: row.key, value: bytes(row.value), version: row.version });
  }

  private writeProgress(owner: string, positions: RecordPosition[]): void {
    for (const p of positions) this.upsertProgress.run({ owner, topic: p.topic, partition: p.partition, nextOffset: p.offset });
  }

  /** The outbox of `owner` for some partitions, oldest first. */
  outbox(owner: string, partitions: number[], limit: number): OutboxRecord[] {
    return this.db
      .select()
      .from(outbox)
      .where(and(eq(outbox.owner, owner), inArray(outbox.partition, partitions)))
      .orderBy(asc(outbox.id))
      .limit(limit)
      .all()
      .map((row) => ({
        id: row.id,
        topic: row.topic,
        partition: row.partition,
        key: row.key,
        value: new Uint8Array(row.value),
        headers: row.headers ? (JSON.parse(row.headers) as Headers) : {},
      }));
  }

  /** Forgets outbox records once the log has stored them. */
  deleteOutbox(owner: string, ids: number[]): void {
    this.sqlite.transaction(() => {
      for (let i = 0; i < ids.length; i += 500) {
        this.db.delete(outbox).where(and(eq(outbox.owner, owner), inArray(outbox.id, ids.slice(i, i + 500)))).run();
      }
    }).immediate();
  }

  /** Drops the outbox of one partition: the changelog already has newer news. */
  deleteOutboxOf(owner: string, partition: number): void {
    this.db.delete(outbox).where(and(eq(outbox.owner, owner), eq(outbox.partition, partition))).run();
  }

  rejectionsOf(owner: string): Rejection[] {
    return this.db
      .select()
      .from(rejections)
      .where(eq(rejections.owner, owner))
      .all()
      .map((r) => ({ position: { topic: r.topic, partition: r.partition, offset: r.offset }, key: r.key, code: r.code, detail: r.detail }));
  }

  close(): void {
    this.sqlite.close();
  }
}

import type { Database } from "bun:sqlite";
import { and, asc, eq, gte, lt, sql } from "drizzle-orm";
import type { BunSQLiteDatabase } from "drizzle-orm/bun-sqlite";
import { join } from "node:path";
import { openSqlite } from "../store/sqlite.js";
import * as schema from "./embedded-schema.js";
import {
  CoPartitioningError,
  UnknownTopicError,
  type Headers,
  type Log,
  type LogRecord,
  type PollResult,
  type ProduceRecord,
  type RecordPosition,
  type Subscription,
  type SubscribeOptions,
  type TopicPartition,
  type TopicSpec,
} from "./log.js";
import { Signal } from "../signal.js";
import { partitionForKey } from "./murmur2.js";

const { groupMembers, groupOffsets, partitionHeads, records, topics } = schema;

export interface EmbeddedLogOptions {
  /** How often a subscription looks for records appended by other processes. */
  pollMs: number;
  /** A group member that has not renewed its lease for this long is presumed dead. */
  sessionTimeoutMs?: number;
  /** How often a member renews its lease and re-reads the group's membership. */
  heartbeatMs?: number;
}

/** Records read per batch when replaying a changelog. */
const REPLAY_BATCH_RECORDS_MAX = 2_000;
/** Records appended in one transaction; bounds the time the write lock is held. */
const APPEND_BATCH_RECORDS_MAX = 5_000;

interface PendingAppend {
  records: ProduceRecord[];
  resolve(positions: RecordPosition[]): void;
  reject(error: unknown): void;
}

/**
 * A durable, partitioned log in one SQLite file (DATA_DIR/log.db), with the semantics
 * of the Kafka path: murmur2 partitioning, dense per-partition offsets, consumer
 * groups that share partitions among live members, and committed group offsets.
 *
 * Several processes may open the same file: SQLite's write lock orders their appends,
 * and a subscription notices other processes' appends within `pollMs`. Appends made
 * by this process wake its own subscriptions at once.
 *
 * Concurrent `produce` calls are committed together in one transaction (group commit),
 * so one fsync covers many requests.
 */
export class EmbeddedLog implements Log {
  readonly kind = "embedded" as const;
  readonly sqlite: Database;
  readonly db: BunSQLiteDatabase<typeof schema>;
  readonly options: Required<EmbeddedLogOptions>;
  private readonly partitionCounts = new Map<string, number>();
  private pending: PendingAppend[] = [];
  private flushScheduled = false;
  private readonly appended = new Signal();
  private closed = false;
  /** Bumped on every local append, so subscriptions can skip reads when idle. */
  appendCount = 0;

  private readonly bumpHead;
  private readonly insertRecord;

  constructor(path: string, options: EmbeddedLogOptions) {
    this.options = { sessionTimeoutMs: 6_000, heartbeatMs: 1_000, ...options };
    ({ sqlite: this.sqlite, db: this.db } = openSqlite(path, schema, join(import.meta.dir, "migrations"), "full"));
    this.bumpHead = this.db
      .update(partitionHeads)
      .set({ nextOffset: sql`${partitionHeads.nextOffset} + 1` })
      .where(and(eq(partitionHeads.topic, sql.placeholder("topic")), eq(partitionHeads.partition, sql.placeholder("partition"))))
      .returning({ nextOffset: partitionHeads.nextOffset })
      .prepare();
    this.insertRecord = this.db
      .insert(records)
      .values({
        topic: sql.placeholder("topic"),
        partition: sql.placeholder("partition"),
        offset: sql.placeholder("offset"),
        key: sql.placeholder("key"),
        value: sql.placeholder("value"),
        headers: sql.placeholder("headers"),
        timestampMs: sql.placeholder("timestampMs"),
      })
      .prepare();
  }

  static open(dataDir: string, options: EmbeddedLogOptions): EmbeddedLog {
    return new EmbeddedLog(join(dataDir, "log.db"), options);
  }

  async ensureTopics(specs: TopicSpec[]): Promise<void> {
    this.sqlite.transaction(() => {
      for (const spec of specs) {
        const existing = this.db.select().from(topics).where(eq(topics.name, spec.name)).get();
        if (existing) {
          if (existing.partitions !== spec.partitions) throw new CoPartitioningError(spec.name, spec.partitions, existing.partitions);
          continue;
        }
        this.db.insert(topics).values({ name: spec.name, partitions: spec.partitions, compacted: spec.compacted ?? false }).run();
        for (let partition = 0; partition < spec.partitions; partition++) {
          this.db.insert(partitionHeads).values({ topic: spec.name, partition, nextOffset: 0 }).run();
        }
      }
    }).immediate();
    for (const spec of specs) this.partitionCounts.set(spec.name, spec.partitions);
  }

  async partitionCount(topic: string): Promise<number> {
    return this.partitionCountSync(topic);
  }

  partitionCountSync(topic: string): number {
    const cached = this.partitionCounts.get(topic);
    if (cached !== undefined) return cached;
    const row = this.db.select({ partitions: topics.partitions }).from(topics).where(eq(topics.name, topic)).get();
    if (!row) throw new UnknownTopicError(topic);
    this.partitionCounts.set(topic, row.partitions);
    return row.partitions;
  }

  produce(batch: ProduceRecord[]): Promise<RecordPosition[]> {
    if (this.closed) return Promise.reject(new Error("log is closed"));
    try {
      for (const record of batch) this.checkPartition(record);
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise((resolve, reject) => {
      this.pending.push({ records: batch, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private checkPartition(record: ProduceRecord): void {
    const count = this.partitionCountSync(record.topic);
    if (record.partition !== undefined && !(Number.isInteger(record.partition) && record.partition >= 0 && record.partition < count)) {
      throw new RangeError(`partition ${record.partition} does not exist in topic ${record.topic} (${count} partitions)`);
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    while (this.pending.length > 0) {
      const batch: PendingAppend[] = [];
      let size = 0;
      while (this.pending.length > 0 && (batch.length === 0 || size + this.pending[0]!.records.length <= APPEND_BATCH_RECORDS_MAX)) {
        const next = this.pending.shift()!;
        size += next.records.length;
        batch.push(next);
      }
      this.appendBatch(batch);
    }
  }

  private appendBatch(batch: PendingAppend[]): void {
    const nowMs = Date.now();
    let positions: RecordPosition[][];
    try {
      positions = this.sqlite.transaction(() => batch.map((append) => append.records.map((r) => this.appendOne(r, nowMs)))).immediate();
    } catch (error) {
      for (const append of batch) append.reject(error);
      return;
    }
    this.appendCount++;
    batch.forEach((append, i) => append.resolve(positions[i]!));
    this.appended.notify();
  }

  private appendOne(record: ProduceRecord, nowMs: number): RecordPosition {
    const partition = record.partition ?? partitionForKey(record.key, this.partitionCountSync(record.topic));
    const head = this.bumpHead.get({ topic: record.topic, partition });
    if (!head) throw new UnknownTopicError(record.topic);
    const offset = head.nextOffset - 1;
    this.insertRecord.run({
      topic: record.topic,
      partition,
      offset,
      key: record.key,
      value: Buffer.from(record.value.buffer, record.value.byteOffset, record.value.byteLength),
      headers: record.headers && Object.keys(record.headers).length > 0 ? JSON.stringify(record.headers) : null,
      timestampMs: nowMs,
    });
    return { topic: record.topic, partition, offset };
  }

  async endOffsets(topic: string): Promise<number[]> {
    const rows = this.db
      .select({ partition: partitionHeads.partition, nextOffset: partitionHeads.nextOffset })
      .from(partitionHeads)
      .where(eq(partitionHeads.topic, topic))
      .orderBy(asc(partitionHeads.partition))
      .all();
    if (rows.length === 0) throw new UnknownTopicError(topic);
    return rows.map((row) => row.nextOffset);
  }

  /** Reads up to `limit` records of one partition from `offset` on. */
  read(position: RecordPosition, limit: number): LogRecord[] {
    const rows = this.db
      .select()
      .from(records)
      .where(and(eq(records.topic, position.topic), eq(records.partition, position.partition), gte(records.offset, position.offset)))
      .orderBy(asc(records.offset))
      .limit(limit)
      .all();
    return rows.map((row) => ({
      topic: row.topic,
      partition: row.partition,
      offset: row.offset,
      key: row.key,
      value: new Uint8Array(row.value),
      timestampMs: row.timestampMs,
      headers: row.headers ? (JSON.parse(row.headers) as Headers) : {},
    }));
  }

  async *replay(topic: string, from: RecordPosition[]): AsyncIterable<LogRecord[]> {
    const ends = await this.endOffsets(topic);
    for (const start of from) {
      let offset = start.offset;
      while (offset < ends[start.partition]!) {
        const batch = this.read({ topic, partition: start.partition, offset }, REPLAY_BATCH_RECORDS_MAX);
        if (batch.length === 0) break;
        yield batch.filter((r) => r.offset < ends[start.partition]!);
        offset = batch[batch.length - 1]!.offset + 1;
      }
    }
  }

  subscribe(options: SubscribeOptions): Subscription {
    return new EmbeddedSubscription(this, options);
  }

  /** Resolves after the next local append, or after `ms`. */
  waitForAppend(ms: number): Promise<void> {
    return this.appended.wait(ms);
  }

  /** SQLite's counter of commits made by other connections to this file. */
  dataVersion(): number {
    return (this.sqlite.query("PRAGMA data_version").get() as { data_version: number }).data_version;
  }

  async ping(): Promise<void> {
    if (this.closed) throw new Error("log is closed");
    this.sqlite.query("SELECT 1").get();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    this.appended.notify();
    this.sqlite.close();
  }

  /** Renews a member's lease and returns the group's live members, sorted. */
  heartbeat(group: string, memberId: string): string[] {
    const nowMs = Date.now();
    return this.sqlite.transaction(() => {
      this.db
        .insert(groupMembers)
        .values({ group, memberId, expiresMs: nowMs + this.options.sessionTimeoutMs })
        .onConflictDoUpdate({ target: [groupMembers.group, groupMembers.memberId], set: { expiresMs: nowMs + this.options.sessionTimeoutMs } })
        .run();
      this.db.delete(groupMembers).where(and(eq(groupMembers.group, group), lt(groupMembers.expiresMs, nowMs))).run();
      return this.db
        .select({ memberId: groupMembers.memberId })
        .from(groupMembers)
        .where(eq(groupMembers.group, group))
        .orderBy(asc(groupMembers.memberId))
        .all()
        .map((row) => row.memberId);
    }).immediate();
  }

  leave(group: string, memberId: string): void {
    if (this.closed) return;
    this.db.delete(groupMembers).where(and(eq(groupMembers.group, group), eq(groupMembers.memberId, memberId))).run();
  }

  committedOffset(group: string, tp: TopicPartition): number {
    const row = this.db
      .select({ offset: groupOffsets.offset })
      .from(groupOffsets)
      .where(and(eq(groupOffsets.group, group), eq(groupOffsets.topic, tp.topic), eq(groupOffsets.partition, tp.partition)))
      .get();
    return row?.offset ?? 0;
  }

  commitOffsets(group: string, positions: RecordPosition[]): void {
    this.sqlite.transaction(() => {
      for (const p of positions) {
        this.db
          .insert(groupOffsets)
          .values({ group, topic: p.topic, partition: p.partition, offset: p.offset })
          .onConflictDoUpdate({ target: [groupOffsets.group, groupOffsets.topic, groupOffsets.partition], set: { offset: p.offset } })
          .run();
      }
    }).immediate();
  }
}

const tpKey = (tp: TopicPartition) => `${tp.topic}\u0000${tp.partition}`;

/**
 * A subscription to the embedded log. With a group, partitions are dealt round-robin
 * over the group's live members sorted by id, recomputed at every heartbeat; members
 * may briefly disagree during a change, which the runtime tolerates because it checks
 * its own progress in the transaction that applies a batch.
 */
class EmbeddedSubscription implements Subscription {
  private readonly memberId = crypto.randomUUID();
  private readonly positions = new Map<string, RecordPosition>();
  private nextHeartbeatMs = 0;
  private rotation = 0;
  private idleMark: string | null = null;
  private closed = false;

  constructor(private readonly log: EmbeddedLog, private readonly options: SubscribeOptions) {}

  async poll(maxRecords: number, maxWaitMs: number): Promise<PollResult> {
    const deadline = Date.now() + maxWaitMs;
    for (;;) {
      if (this.closed) return { records: [], assigned: [], revoked: [] };
      const change = this.refreshAssignment();
      if (change.assigned.length > 0 || change.revoked.length > 0) return { records: [], ...change };
      const found = this.readAssigned(maxRecords);
      if (found.length > 0) return { records: found, assigned: [], revoked: [] };
      const left = deadline - Date.now();
      if (left <= 0) return { records: [], assigned: [], revoked: [] };
      await this.log.waitForAppend(Math.min(left, this.log.options.pollMs));
    }
  }

  seek(position: RecordPosition): void {
    const key = tpKey(position);
    if (!this.positions.has(key)) throw new Error(`cannot seek ${position.topic}/${position.partition}: not assigned`);
    this.positions.set(key, { ...position });
    this.idleMark = null;
  }

  async commit(positions: RecordPosition[]): Promise<void> {
    if (!this.options.group) throw new Error("commit needs a consumer group");
    this.log.commitOffsets(this.options.group, positions);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.options.group) this.log.leave(this.options.group, this.memberId);
  }

  private refreshAssignment(): { assigned: TopicPartition[]; revoked: TopicPartition[] } {
    const nowMs = Date.now();
    if (nowMs < this.nextHeartbeatMs) return { assigned: [], revoked: [] };
    this.nextHeartbeatMs = this.options.group ? nowMs + this.log.options.heartbeatMs : Number.POSITIVE_INFINITY;
    const wanted = this.wantedPartitions();
    const assigned = wanted.filter((tp) => !this.positions.has(tpKey(tp)));
    const wantedKeys = new Set(wanted.map(tpKey));
    const revoked = [...this.positions.values()].filter((p) => !wantedKeys.has(tpKey(p))).map(({ topic, partition }) => ({ topic, partition }));
    for (const tp of revoked) this.positions.delete(tpKey(tp));
    for (const tp of assigned) {
      const offset = this.options.group ? this.log.committedOffset(this.options.group, tp) : 0;
      this.positions.set(tpKey(tp), { ...tp, offset });
    }
    if (assigned.length > 0 || revoked.length > 0) this.idleMark = null;
    return { assigned, revoked };
  }

  private wantedPartitions(): TopicPartition[] {
    const all = this.options.topics.flatMap((topic) =>
      Array.from({ length: this.log.partitionCountSync(topic) }, (_, partition) => ({ topic, partition })),
    );
    if (!this.options.group) return all;
    const members = this.log.heartbeat(this.options.group, this.memberId);
    const index = members.indexOf(this.memberId);
    return all.filter((tp) => tp.partition % members.length === index);
  }

  private readAssigned(maxRecords: number): LogRecord[] {
    // Nothing was appended since the last read that found nothing: skip the queries.
    const mark = `${this.log.appendCount}:${this.log.dataVersion()}`;
    if (mark === this.idleMark) return [];
    const positions = [...this.positions.values()];
    const found: LogRecord[] = [];
    for (let i = 0; i < positions.length && found.length < maxRecords; i++) {
      const position = positions[(this.rotation + i) % positions.length]!;
      const batch = this.log.read(position, maxRecords - found.length);
      if (batch.length === 0) continue;
      found.push(...batch);
      position.offset = batch[batch.length - 1]!.offset + 1;
    }
    this.rotation++;
    this.idleMark = found.length === 0 ? mark : null;
    return found;
  }
}

import type { Database } from "bun:sqlite";
import { and, asc, eq, lt, sql } from "drizzle-orm";
import type { BunSQLiteDatabase } from "drizzle-orm/bun-sqlite";
import { join, resolve } from "node:path";
import { LogUnavailableError } from "../runtime/errors.js";
import { Signal } from "../signal.js";
import { applyMigrations, openSqlite, type Durability } from "../store/sqlite.js";
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
import { partitionForKey } from "./murmur2.js";

const { groupMembers, groupOffsets, partitionHeads, records, topics } = schema;

export interface EmbeddedLogOptions {
  /** How often a subscription looks for records appended by other processes. */
  pollMs: number;
  /** "full" for a connection whose appends are promises to clients; see OpenOptions. */
  durability?: Durability;
  /**
   * Never block the event loop on another connection's write lock: an append that
   * finds the lock taken is retried a moment later, while the loop serves requests
   * (which join the next group commit). For the API's connection.
   */
  nonBlockingAppends?: boolean;
  /** A group member that has not renewed its lease for this long is presumed dead. */
  sessionTimeoutMs?: number;
  /** How often a member renews its lease and re-reads the group's membership. */
  heartbeatMs?: number;
}

/** Records read per batch when replaying a changelog. */
const REPLAY_BATCH_RECORDS_MAX = 5_000;
/** Records appended in one transaction; bounds the time the write lock is held. */
const APPEND_BATCH_RECORDS_MAX = 5_000;
/** How long a non-blocking append waits for the write lock, in all, before it fails. */
const APPEND_LOCK_WAIT_MS = 5_000;
const APPEND_RETRY_DELAY_MAX_MS = 8;
/** How long a blocking connection waits for the write lock before SQLITE_BUSY. */
const BUSY_TIMEOUT_MS = 10_000;

const LOG_MIGRATIONS = { folder: join(import.meta.dir, "migrations"), table: "__drizzle_migrations" };

interface PendingAppend {
  records: ProduceRecord[];
  sinceMs: number;
  resolve(positions: RecordPosition[]): void;
  reject(error: unknown): void;
}

const tpKey = (tp: TopicPartition) => `${tp.topic}\u0000${tp.partition}`;
const isBusy = (error: unknown) => typeof (error as { code?: unknown })?.code === "string" && (error as { code: string }).code.startsWith("SQLITE_BUSY");

/**
 * A durable, partitioned log in one SQLite file (DATA_DIR/log.db), with the semantics
 * of the Kafka path: murmur2 partitioning, dense per-partition offsets, consumer
 * groups that share partitions among live members, and committed group offsets. The
 * processor groups' state lives in the same file (src/store), so that one transaction
 * consumes input, changes state and appends output.
 *
 * Several connections may open the file: threads of one process and other processes.
 * SQLite's write lock orders their appends. A subscription wakes at once for appends
 * made in this process (any thread: they are announced on a BroadcastChannel), and
 * notices other processes' appends within `pollMs`.
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
  private readonly watchers = new Map<string, Set<Signal>>();
  private readonly channel: BroadcastChannel | undefined;
  private closed = false;
  /** Bumped on every append seen in this process, so idle subscriptions can skip reads. */
  appendCount = 0;

  private readonly selectHead;
  private readonly updateHead;
  private readonly selectHeads;
  private readonly insertRecord;
  private readonly selectRecords;
  private readonly selectDataVersion;

  constructor(readonly path: string, options: EmbeddedLogOptions) {
    this.options = { durability: "full", nonBlockingAppends: false, sessionTimeoutMs: 6_000, heartbeatMs: 1_000, ...options };
    this.sqlite = openSqlite(path, { durability: this.options.durability, busyTimeoutMs: BUSY_TIMEOUT_MS });
    this.db = applyMigrations(this.sqlite, schema, LOG_MIGRATIONS);
    const p = (name: string) => sql.placeholder(name);
    const head = and(eq(partitionHeads.topic, p("topic")), eq(partitionHeads.partition, p("partition")));
    this.selectHead = this.db.select({ nextOffset: partitionHeads.nextOffset }).from(partitionHeads).where(head).prepare();
    this.updateHead = this.db.update(partitionHeads).set({ nextOffset: sql`${p("nextOffset")}` }).where(head).prepare();
    this.selectHeads = this.db
      .select({ partition: partitionHeads.partition, nextOffset: partitionHeads.nextOffset })
      .from(partitionHeads)
      .where(eq(partitionHeads.topic, p("topic")))
      .orderBy(asc(partitionHeads.partition))
      .prepare();
    this.insertRecord = this.db
      .insert(records)
      .values({ topic: p("topic"), partition: p("partition"), offset: p("offset"), key: p("key"), value: p("value"), headers: p("headers"), timestampMs: p("timestampMs") })
      .prepare();
    this.selectRecords = this.db
      .select()
      .from(records)
      .where(and(eq(records.topic, p("topic")), eq(records.partition, p("partition")), sql`${records.offset} >= ${p("offset")}`))
      .orderBy(asc(records.offset))
      .limit(p("limit"))
      .prepare();
    this.selectDataVersion = this.sqlite.prepare<{ data_version: number }, []>("PRAGMA data_version");
    if (path !== ":memory:") {
      this.channel = new BroadcastChannel(`depositaja-log:${resolve(path)}`);
      this.channel.addEventListener("message", (event) => this.wake((event as unknown as { data: string[] }).data));
      (this.channel as { unref?(): void }).unref?.();
    }
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
    if (this.closed) return Promise.reject(new LogUnavailableError("log is closed"));
    try {
      for (const record of batch) this.partitionOf(record);
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise((resolve, reject) => {
      this.pending.push({ records: batch, sinceMs: Date.now(), resolve, reject });
      this.scheduleFlush(0);
    });
  }

  private scheduleFlush(delayMs: number): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    if (delayMs === 0) setImmediate(() => this.flush());
    else setTimeout(() => this.flush(), delayMs);
  }

  /** The partition a record goes to: its own if given and valid, else its key's. */
  private partitionOf(record: ProduceRecord): number {
    const count = this.partitionCountSync(record.topic);
    if (record.partition === undefined) return partitionForKey(record.key, count);
    if (!(Number.isInteger(record.partition) && record.partition >= 0 && record.partition < count)) {
      throw new RangeError(`partition ${record.partition} does not exist in topic ${record.topic} (${count} partitions)`);
    }
    return record.partition;
  }

  private flush(): void {
    this.flushScheduled = false;
    while (this.pending.length > 0 && !this.closed) {
      let size = 0;
      let count = 0;
      while (count < this.pending.length && (count === 0 || size + this.pending[count]!.records.length <= APPEND_BATCH_RECORDS_MAX)) {
        size += this.pending[count]!.records.length;
        count++;
      }
      const batch = this.pending.slice(0, count);
      const outcome = this.appendBatch(batch);
      if (outcome === "busy") {
        this.failOverdue();
        this.scheduleFlush(1 + Math.floor(Math.random() * APPEND_RETRY_DELAY_MAX_MS));
        return;
      }
      this.pending.splice(0, count);
    }
  }

  /**
   * Commits a group of appends in one transaction, or reports the lock taken. A
   * non-blocking connection asks for the lock without waiting (busy_timeout 0) for this
   * transaction only: everything else it does may wait, as at start-up.
   */
  private appendBatch(batch: PendingAppend[]): "done" | "busy" {
    let positions: RecordPosition[][];
    try {
      if (this.options.nonBlockingAppends) this.sqlite.run("PRAGMA busy_timeout = 0");
      positions = this.sqlite.transaction(() => {
        const nowMs = Date.now();
        return batch.map((append) => this.appendInTransaction(append.records, nowMs));
      }).immediate();
    } catch (error) {
      if (this.options.nonBlockingAppends && isBusy(error)) return "busy";
      const failure = isBusy(error) ? new LogUnavailableError("the embedded log stayed locked by another writer", { cause: error }) : error;
      for (const append of batch) append.reject(failure);
      return "done";
    } finally {
      if (this.options.nonBlockingAppends) this.sqlite.run(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
    }
    batch.forEach((append, i) => append.resolve(positions[i]!));
    this.announce(batch.flatMap((append) => append.records.map((r) => r.topic)));
    return "done";
  }

  private failOverdue(): void {
    const nowMs = Date.now();
    const overdue = this.pending.filter((append) => nowMs - append.sinceMs > APPEND_LOCK_WAIT_MS);
    if (overdue.length === 0) return;
    this.pending = this.pending.filter((append) => !overdue.includes(append));
    const error = new LogUnavailableError(`the embedded log stayed locked by another writer for ${APPEND_LOCK_WAIT_MS} ms`);
    for (const append of overdue) append.reject(error);
  }

  /**
   * Appends records inside a transaction the caller holds on this connection, and
   * returns their positions. This is how a processor commits its output with its
   * state and progress. Call `announce` with the topics after the commit.
   */
  appendInTransaction(batch: ProduceRecord[], nowMs: number): RecordPosition[] {
    const heads = new Map<string, { topic: string; partition: number; next: number }>();
    const positions = batch.map((record) => {
      const partition = this.partitionOf(record);
      const key = `${record.topic}\u0000${partition}`;
      let head = heads.get(key);
      if (!head) {
        const row = this.selectHead.get({ topic: record.topic, partition });
        if (!row) throw new UnknownTopicError(record.topic);
        head = { topic: record.topic, partition, next: row.nextOffset };
        heads.set(key, head);
      }
      const offset = head.next++;
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
    });
    for (const head of heads.values()) this.updateHead.run({ topic: head.topic, partition: head.partition, nextOffset: head.next });
    return positions;
  }

  /** Wakes the subscriptions of `topics` in every thread of this process. */
  announce(topics: string[]): void {
    const distinct = [...new Set(topics)];
    if (distinct.length === 0) return;
    this.wake(distinct);
    this.channel?.postMessage(distinct);
  }

  private wake(topics: string[]): void {
    this.appendCount++;
    for (const topic of topics) for (const signal of this.watchers.get(topic) ?? []) signal.notify();
  }

  /** Registers a signal notified when any of `topics` is appended to in this process. */
  watch(topics: string[], signal: Signal): () => void {
    for (const topic of topics) {
      let set = this.watchers.get(topic);
      if (!set) this.watchers.set(topic, (set = new Set()));
      set.add(signal);
    }
    return () => {
      for (const topic of topics) this.watchers.get(topic)?.delete(signal);
    };
  }

  async endOffsets(topic: string): Promise<number[]> {
    return this.endOffsetsSync(topic);
  }

  endOffsetsSync(topic: string): number[] {
    const rows = this.selectHeads.all({ topic });
    if (rows.length === 0) throw new UnknownTopicError(topic);
    return rows.map((row) => row.nextOffset);
  }

  /** Reads up to `limit` records of one partition from `offset` on. */
  read(position: RecordPosition, limit: number): LogRecord[] {
    const rows = this.selectRecords.all({ topic: position.topic, partition: position.partition, offset: position.offset, limit });
    return rows.map((row) => ({
      topic: row.topic,
      partition: row.partition,
      offset: row.offset,
      key: row.key,
      value: new Uint8Array(row.value.buffer, row.value.byteOffset, row.value.byteLength),
      timestampMs: row.timestampMs,
      headers: row.headers ? (JSON.parse(row.headers) as Headers) : {},
    }));
  }

  async *replay(topic: string, from: RecordPosition[]): AsyncIterable<LogRecord[]> {
    const ends = this.endOffsetsSync(topic);
    for (const start of from) {
      let offset = start.offset;
      const end = ends[start.partition]!;
      while (offset < end) {
        const batch = this.read({ topic, partition: start.partition, offset }, Math.min(REPLAY_BATCH_RECORDS_MAX, end - offset));
        if (batch.length === 0) break;
        yield batch;
        offset = batch[batch.length - 1]!.offset + 1;
      }
    }
  }

  subscribe(options: SubscribeOptions): Subscription {
    return new EmbeddedSubscription(this, options);
  }

  /** SQLite's counter of commits made by other connections to this file. */
  dataVersion(): number {
    return this.selectDataVersion.get()!.data_version;
  }

  async ping(_timeoutMs: number): Promise<void> {
    if (this.closed) throw new LogUnavailableError("log is closed");
    this.sqlite.query("SELECT 1").get();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    // Appends accepted before the close are committed, or refused: never left hanging.
    while (this.pending.length > 0) {
      this.flushScheduled = false;
      this.flush();
      if (this.pending.length > 0) await Bun.sleep(APPEND_RETRY_DELAY_MAX_MS);
    }
    this.closed = true;
    for (const set of this.watchers.values()) for (const signal of set) signal.notify();
    this.channel?.close();
    this.sqlite.close();
  }

  get isClosed(): boolean {
    return this.closed;
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

/**
 * A subscription to the embedded log. With a group, partition p of every topic goes to
 * the member at p modulo the number of live members, sorted by id (co-partitioned:
 * a wallet's events of every topic reach one member), recomputed at every heartbeat.
 * Members may briefly disagree during a change, which the runtime tolerates because it
 * checks its own progress in the transaction that applies a batch.
 */
class EmbeddedSubscription implements Subscription {
  private readonly memberId = crypto.randomUUID();
  private readonly positions = new Map<string, RecordPosition>();
  private readonly signal = new Signal();
  private readonly unwatch: () => void;
  private nextHeartbeatMs = 0;
  private rotation = 0;
  private idleMark: string | null = null;
  private closed = false;

  constructor(private readonly log: EmbeddedLog, private readonly options: SubscribeOptions) {
    this.unwatch = log.watch(options.topics, this.signal);
  }

  async poll(maxRecords: number, maxWaitMs: number): Promise<PollResult> {
    const deadline = Date.now() + maxWaitMs;
    for (;;) {
      if (this.closed || this.log.isClosed) return { records: [], assigned: [], revoked: [] };
      const change = this.refreshAssignment();
      if (change.assigned.length > 0 || change.revoked.length > 0) return { records: [], ...change };
      const found = this.readAssigned(maxRecords);
      if (found.length > 0) return { records: found, assigned: [], revoked: [] };
      const left = deadline - Date.now();
      if (left <= 0) return { records: [], assigned: [], revoked: [] };
      await this.signal.wait(Math.min(left, this.log.options.pollMs, Math.max(1, this.nextHeartbeatMs - Date.now())));
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
    if (this.closed) return;
    this.closed = true;
    this.unwatch();
    this.signal.notify();
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

  /**
   * Reads records of assigned partitions that have any: the partition heads tell which,
   * in one query per topic, so an idle partition costs no read. Nothing appended since
   * the last empty read, by this process or another, costs no query at all.
   */
  private readAssigned(maxRecords: number): LogRecord[] {
    const mark = `${this.log.appendCount}:${this.log.dataVersion()}`;
    if (mark === this.idleMark) return [];
    const heads = new Map(this.options.topics.map((topic) => [topic, this.log.endOffsetsSync(topic)]));
    const positions = [...this.positions.values()];
    const found: LogRecord[] = [];
    for (let i = 0; i < positions.length && found.length < maxRecords; i++) {
      const position = positions[(this.rotation + i) % positions.length]!;
      if ((heads.get(position.topic)?.[position.partition] ?? 0) <= position.offset) continue;
      const batch = this.log.read(position, maxRecords - found.length);
      if (batch.length === 0) continue;
      for (const record of batch) found.push(record);
      position.offset = batch[batch.length - 1]!.offset + 1;
    }
    this.rotation++;
    this.idleMark = found.length === 0 ? mark : null;
    return found;
  }
}

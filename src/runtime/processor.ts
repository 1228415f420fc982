import type { Log, LogRecord, RecordPosition, Subscription, TopicPartition } from "../log/log.js";
import { StaleProgressError, type AppliedEvent, type BatchCommit, type Rejection, type StateStore, type TableRow } from "../store/state-store.js";
import { appliedEventCodec, appliedEventKey, DecodeError } from "./codecs.js";
import { partitionForKey } from "../log/murmur2.js";
import { TOPICS, type AnyGroup } from "./topology.js";

/** Limits of one processor, unit last. */
export interface ProcessorLimits {
  batchRecordsMax: number;
  pollWaitMs: number;
  /** Committed group offsets are advisory here (progress lives in state.db): commit them at most this often. */
  offsetCommitIntervalMs: number;
  retryBackoffMs: number;
  /**
   * After a batch smaller than the maximum, wait this long before the next poll, so
   * that under load batches grow and transactions get fewer: at most this much latency.
   */
  lingerMs: number;
}

export const DEFAULT_PROCESSOR_LIMITS: ProcessorLimits = {
  batchRecordsMax: 500,
  pollWaitMs: 200,
  offsetCommitIntervalMs: 1_000,
  retryBackoffMs: 500,
  lingerMs: 10,
};

/** Points where tests inject crashes; each is called synchronously at that point. */
export interface FaultPoints {
  beforeCommit?(): void;
  afterCommit?(): void;
  afterPublish?(): void;
}

/** Header carrying the input offset that produced a changelog value. */
export const VERSION_HEADER = "version";
/**
 * Header on every `<group>-table` record: the group had applied its input partition
 * up to (not including) this offset when it wrote the record. Views use it to answer
 * "does the table include the deposit at this position yet?".
 */
export const THROUGH_HEADER = "through";
/**
 * Key of a `<group>-table` record that only carries THROUGH_HEADER, for a batch that
 * changed no row of its partition. No wallet has an empty id.
 */
export const PROGRESS_MARKER_KEY = "";
/**
 * Header marking a `<group>-table` record as an applied event id rather than a table
 * row (value: AppliedEvent). Ids travel in the table's own topic and partition, in the
 * same produce as the rows of their batch, so a restore never sees one without the other.
 */
export const KIND_HEADER = "kind";
export const APPLIED_KIND = "applied";

/**
 * Records one outbox publish may carry: a batch's outbox is never split. Every step
 * publishes before it polls, so the outbox holds at most about one batch (a row, an
 * applied id and an emit per record): far below this, and below the Kafka log's
 * produce queue bound.
 */
const OUTBOX_RECORDS_MAX = 20_000;

const tpKey = (tp: TopicPartition) => `${tp.topic}\u0000${tp.partition}`;

/**
 * Runs one processor group: consumes its input as a consumer group, hands each event
 * to the group's actor, and commits, per batch and in one SQLite transaction, the new
 * table rows, the applied event ids, the progress (next offset per partition) and an
 * outbox of the records to emit. The outbox is then produced to the log and cleared.
 *
 * Exactly-once effects follow from that transaction:
 * - a redelivered record is below the stored progress and is skipped;
 * - an event id seen before for the same key is skipped (or refused if its content
 *   differs), however late it comes again;
 * - a crash before the commit loses only work that is redone from the stored
 *   progress; a crash after it re-sends the outbox, whose consumers dedupe (event
 *   ids for flags, versions for changelogs).
 * - If another process applied the same partition meanwhile (a rebalance in flight),
 *   the commit sees its progress moved and drops the batch.
 */
export class Processor {
  private readonly positions = new Map<string, RecordPosition>();
  /** Partitions assigned but not yet restored; their records wait in the backlog. */
  private readonly unrestored = new Map<string, TopicPartition>();
  /**
   * Records polled but not yet committed. A failed commit leaves them here to be
   * retried: on Kafka a subscription cannot go back to re-read them.
   */
  private backlog: LogRecord[] = [];
  private subscription: Subscription | undefined;
  private running: Promise<void> | undefined;
  private stopping = false;
  private lastOffsetCommitMs = 0;

  constructor(
    readonly group: AnyGroup,
    private readonly log: Log,
    private readonly store: StateStore,
    private readonly limits: ProcessorLimits = DEFAULT_PROCESSOR_LIMITS,
    private readonly faults: FaultPoints = {},
    /**
     * Restore a partition's table and applied ids from the changelogs when it is
     * assigned. On Kafka each instance has its own state.db, which is stale or empty
     * when a partition comes from another instance. Embedded instances share one
     * state.db on one DATA_DIR, so theirs never is.
     */
    private readonly restoreOnAssign: boolean = log.kind === "kafka",
  ) {}

  /** The input's partition count, learned when the first batch is processed. */
  private partitions = 0;

  /** Starts the poll loop in the background. Errors other than retryable ones stop it and reject `done`. */
  start(): void {
    if (this.running) return;
    this.running = this.loop();
  }

  get done(): Promise<void> {
    return this.running ?? Promise.resolve();
  }

  /** Finishes the batch in hand, commits it, leaves the group. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.running?.catch(() => {});
    await this.subscription?.close();
    this.subscription = undefined;
  }

  private async loop(): Promise<void> {
    while (!this.stopping) {
      try {
        const count = await this.step(this.limits.pollWaitMs);
        if (count > 0 && count < this.limits.batchRecordsMax) await Bun.sleep(this.limits.lingerMs);
      } catch (error) {
        if (!(error instanceof StaleProgressError) && !isRetryable(error)) throw error;
        console.warn(`[${this.group.name}] retrying after: ${(error as Error).message}`);
        this.resyncPositions();
        await Bun.sleep(this.limits.retryBackoffMs);
      }
    }
  }

  /** One poll and, if records came, one batch. Public so tests can drive the runtime step by step. */
  async step(maxWaitMs: number): Promise<number> {
    this.subscription ??= this.log.subscribe({ topics: [this.group.input], group: this.group.name });
    await this.publishOutbox();
    const room = this.limits.batchRecordsMax - this.backlog.length;
    const poll = room > 0 ? await this.subscription.poll(room, maxWaitMs) : { records: [], assigned: [], revoked: [] };
    for (const tp of poll.revoked) {
      this.positions.delete(tpKey(tp));
      this.unrestored.delete(tpKey(tp));
    }
    if (poll.revoked.length > 0) console.log(`[${this.group.name}] revoked partitions ${poll.revoked.map((tp) => tp.partition).join(",")}`);
    for (const tp of poll.assigned) this.unrestored.set(tpKey(tp), tp);
    this.backlog.push(...poll.records);
    this.backlog = this.backlog.filter((r) => this.positions.has(tpKey(r)) || this.unrestored.has(tpKey(r)));
    await this.takeAssigned();
    const records = this.backlog.slice(0, this.limits.batchRecordsMax);
    if (records.length === 0) return 0;
    this.partitions ||= await this.log.partitionCount(this.group.input);
    const commit = this.processBatch(records);
    this.faults.beforeCommit?.();
    this.store.commitBatch(this.group.name, commit);
    this.backlog.splice(0, records.length);
    for (const p of commit.to) this.positions.set(tpKey(p), p);
    this.faults.afterCommit?.();
    await this.publishOutbox();
    this.faults.afterPublish?.();
    await this.maybeCommitOffsets();
    return records.length;
  }

  /**
   * Makes assigned partitions ready: restored from the changelog where needed, then
   * positioned at the stored progress. A restore that fails leaves them unrestored,
   * and their records in the backlog, for the next step.
   */
  private async takeAssigned(): Promise<void> {
    if (this.unrestored.size === 0) return;
    const tps = [...this.unrestored.values()];
    if (this.restoreOnAssign) await this.restore(tps.map((tp) => tp.partition));
    for (const tp of tps) {
      const offset = this.store.progress(this.group.name, tp);
      this.positions.set(tpKey(tp), { ...tp, offset });
      this.subscription?.seek({ ...tp, offset });
      this.unrestored.delete(tpKey(tp));
    }
  }

  /** Runs the actor over a batch, in memory; nothing is written until the commit. */
  private processBatch(records: LogRecord[]): BatchCommit {
    const group = this.group;
    const owner = group.name;
    const states = new Map<string, { state: unknown; version: number; partition: number }>();
    const seen = new Map<string, string>();
    const next = new Map<string, RecordPosition>();
    const applied: AppliedEvent[] = [];
    const rejections: Rejection[] = [];
    const outbox: BatchCommit["outbox"] = [];
    for (const record of records) {
      const key = tpKey(record);
      const position = next.get(key) ?? this.positions.get(key)!;
      if (record.offset < position.offset) continue; // applied before: a redelivery
      next.set(key, { topic: record.topic, partition: record.partition, offset: record.offset + 1 });
      const reject = (code: string, detail: string) => rejections.push({ position: at(record), key: record.key, code, detail });
      let event: unknown;
      try {
        event = group.inputCodec.decode(record.value);
      } catch (error) {
        if (!(error instanceof DecodeError)) throw error;
        reject(error.code, error.message);
        continue;
      }
      if (group.keyOf(event) !== record.key) {
        reject("key_does_not_match_wallet", "the record key must be the event's wallet id, or the wallet's events would be split across partitions");
        continue;
      }
      if (partitionForKey(record.key, this.partitions) !== record.partition) {
        reject("wrong_partition", `wallet ${record.key} belongs in partition ${partitionForKey(record.key, this.partitions)} (Kafka's murmur2); a producer with another partitioner split it`);
        continue;
      }
      const { id, fingerprint } = group.identity(event);
      const seenKey = `${record.key}\u0000${id}`;
      const prior = seen.get(seenKey) ?? this.store.appliedEvent(owner, record.key, id)?.fingerprint;
      if (prior !== undefined) {
        if (prior !== fingerprint) reject(group.conflictCode, `event id ${id} was applied before with ${prior}, now ${fingerprint}`);
        continue;
      }
      seen.set(seenKey, fingerprint);
      const current = states.get(record.key)?.state ?? this.loadState(record.key);
      const outcome = group.actor.handle(current, event);
      states.set(record.key, { state: outcome.state, version: record.offset, partition: record.partition });
      const result = outcome.rejection ?? "applied";
      applied.push({ key: record.key, eventId: id, fingerprint, outcome: result, position: at(record) });
      outbox.push({
        topic: TOPICS.table(group.name),
        partition: record.partition,
        key: appliedEventKey(record.key, id),
        value: appliedEventCodec.encode({ walletId: record.key, eventId: id, fingerprint, outcome: result }),
        headers: { [VERSION_HEADER]: String(record.offset), [KIND_HEADER]: APPLIED_KIND },
      });
      for (const out of outcome.emits) {
        const emit = group.emit(out);
        // Emits are keyed by the same wallet, so they belong to the same partition
        // number (co-partitioning, checked above); naming it tags the outbox row.
        outbox.push({ topic: emit.topic, partition: record.partition, key: emit.key, value: emit.value, headers: {} });
      }
    }
    const rows: BatchCommit["rows"] = [];
    const through = (partition: number) => String(next.get(tpKey({ topic: group.input, partition }))!.offset);
    const unchanged = new Set([...next.values()].map((p) => p.partition));
    for (const [key, s] of states) {
      const value = group.table.encode(s.state);
      rows.push({ key, value, version: s.version });
      unchanged.delete(s.partition);
      // The changelog goes to the input's partition: the table is co-partitioned with it.
      outbox.push({
        topic: TOPICS.table(group.name), partition: s.partition, key, value,
        headers: { [VERSION_HEADER]: String(s.version), [THROUGH_HEADER]: through(s.partition) },
      });
    }
    for (const partition of unchanged) {
      outbox.push({
        topic: TOPICS.table(group.name), partition, key: PROGRESS_MARKER_KEY, value: new Uint8Array(0),
        headers: { [THROUGH_HEADER]: through(partition) },
      });
    }
    const from = [...next.keys()].map((key) => this.positions.get(key)!);
    return { from, to: [...next.values()], rows, applied, rejections, outbox };
  }

  /**
   * Brings the table and the applied ids of `partitions` up to date from the
   * changelog, from where this instance last read it (the start, for an empty
   * state.db). Rows merge newest-version-wins; applied ids are added. Events applied
   * by whoever held a partition are then recognised here by their ids.
   *
   * Records this instance committed but never published (it crashed in between) are
   * still in its outbox. They are published if this instance is still ahead of the
   * changelog; if the changelog has caught up or moved past (another instance applied
   * the same input meanwhile), they are stale and dropped, since a compacted topic
   * keeps the last record written, not the newest version.
   */
  private async restore(partitions: number[]): Promise<void> {
    const owner = this.group.name;
    const topic = TOPICS.table(this.group.name);
    const started = Date.now();
    let restored = 0;
    const throughKey = `${topic}#through`;
    const through = new Map(partitions.map((p) => [p, this.store.progress(owner, { topic: throughKey, partition: p })]));
    const from = partitions.map((partition) => ({ topic, partition, offset: this.store.progress(owner, { topic, partition }) }));
    for await (const batch of this.log.replay(topic, from)) {
      const applied: AppliedEvent[] = [];
      for (const r of batch) {
        const reached = Number(r.headers[THROUGH_HEADER] ?? 0);
        if (reached > through.get(r.partition)!) through.set(r.partition, reached);
        if (r.headers[KIND_HEADER] !== APPLIED_KIND) continue;
        const a = appliedEventCodec.decode(r.value);
        const position = { topic: this.group.input, partition: r.partition, offset: Number(r.headers[VERSION_HEADER] ?? -1) };
        applied.push({ key: a.walletId, eventId: a.eventId, fingerprint: a.fingerprint, outcome: a.outcome, position });
      }
      const marks = [...through].map(([partition, offset]) => ({ topic: throughKey, partition, offset }));
      this.store.mergeChangelog(owner, changelogRows(batch), applied, [...lastPositions(batch), ...marks]);
      restored += batch.length;
    }
    for (const partition of partitions) {
      const local = this.store.progress(owner, { topic: this.group.input, partition });
      if (through.get(partition)! >= local) this.store.deleteOutboxOf(owner, partition);
    }
    console.log(`[${owner}] restored partitions ${partitions.join(",")} from ${restored} changelog records in ${Date.now() - started} ms`);
  }

  private loadState(key: string): unknown {
    const row = this.store.row(this.group.name, key);
    return row ? this.group.table.decode(row.value) : this.group.actor.initial();
  }

  /**
   * Sends the outbox of the partitions this instance holds, in one produce, so a
   * batch's rows and applied ids land together (one record batch per partition).
   * Rows of partitions it does not hold wait: restore decides whether they are still
   * news when the partition comes back.
   */
  private async publishOutbox(): Promise<void> {
    const owned = [...this.positions.values()].map((p) => p.partition);
    if (owned.length === 0) return;
    const pending = this.store.outbox(this.group.name, owned, OUTBOX_RECORDS_MAX);
    if (pending.length === 0) return;
    await this.log.produce(pending.map(({ topic, partition, key, value, headers }) => ({
      topic, key, value, headers, ...(partition === null ? {} : { partition }),
    })));
    this.store.deleteOutbox(this.group.name, pending.map((r) => r.id));
  }

  private async maybeCommitOffsets(): Promise<void> {
    const nowMs = Date.now();
    if (nowMs - this.lastOffsetCommitMs < this.limits.offsetCommitIntervalMs || !this.subscription) return;
    this.lastOffsetCommitMs = nowMs;
    await this.subscription.commit([...this.positions.values()]);
  }

  /**
   * After another process moved the stored progress (a shared state.db), continue
   * from it: records below it are dropped from the backlog; the subscription resumes
   * after the backlog, since the backlog still holds what lies between.
   */
  private resyncPositions(): void {
    for (const [key, p] of this.positions) {
      const offset = this.store.progress(this.group.name, p);
      this.positions.set(key, { ...p, offset });
    }
    this.backlog = this.backlog.filter((r) => r.offset >= (this.positions.get(tpKey(r))?.offset ?? Number.POSITIVE_INFINITY));
    for (const p of this.positions.values()) {
      const held = this.backlog.filter((r) => r.partition === p.partition && r.topic === p.topic);
      this.subscription?.seek({ ...p, offset: held.length > 0 ? held[held.length - 1]!.offset + 1 : p.offset });
    }
  }
}

const at = (r: LogRecord): RecordPosition => ({ topic: r.topic, partition: r.partition, offset: r.offset });

/** The next offset after the last record of each partition in `records`. */
export function lastPositions(records: LogRecord[]): RecordPosition[] {
  const last = new Map<string, RecordPosition>();
  for (const r of records) last.set(tpKey(r), { topic: r.topic, partition: r.partition, offset: r.offset + 1 });
  return [...last.values()];
}

/** Table rows from `<group>-table` records, the newest per key, progress markers left out. */
export function changelogRows(records: LogRecord[]): TableRow[] {
  const rows = new Map<string, TableRow>();
  for (const r of records) {
    if (r.key === PROGRESS_MARKER_KEY || r.headers[KIND_HEADER] === APPLIED_KIND) continue;
    const version = Number(r.headers[VERSION_HEADER] ?? -1);
    const held = rows.get(r.key);
    if (!held || held.version < version) rows.set(r.key, { key: r.key, value: r.value, version });
  }
  return [...rows.values()];
}

/**
 * Errors worth a retry: the database was busy, or the log briefly unreachable (the
 * Kafka client marks such errors canRetry; connection failures and our own produce
 * deadline say so in their message). Anything else is a broken invariant and stops
 * the processor.
 */
export function isRetryable(error: unknown): boolean {
  if ((error as { canRetry?: unknown } | null)?.canRetry === true) return true;
  const message = error instanceof Error ? `${error.message} ${String((error as { cause?: unknown }).cause ?? "")}` : String(error);
  return /SQLITE_BUSY|database is locked|ECONNREFUSED|ECONNRESET|ETIMEDOUT|timeout|did not complete within|Connection to .* failed|metadata failed|network/i.test(message);
}

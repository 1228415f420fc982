import type { Log, LogRecord, RecordPosition, Subscription, TopicPartition } from "../log/log.js";
import { StaleProgressError, type AppliedEvent, type BatchCommit, type Rejection, type StateStore } from "../store/state-store.js";
import { DecodeError } from "./codecs.js";
import { TOPICS, type AnyGroup } from "./topology.js";

/** Limits of one processor, unit last. */
export interface ProcessorLimits {
  batchRecordsMax: number;
  pollWaitMs: number;
  outboxBatchRecordsMax: number;
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
  outboxBatchRecordsMax: 1_000,
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
  private subscription: Subscription | undefined;
  private running: Promise<void> | undefined;
  private stopping = false;
  private lastOffsetCommitMs = 0;
  /** Records applied since start; a gauge for tests and benchmarks. */
  appliedCount = 0;

  constructor(
    readonly group: AnyGroup,
    private readonly log: Log,
    private readonly store: StateStore,
    private readonly limits: ProcessorLimits = DEFAULT_PROCESSOR_LIMITS,
    private readonly faults: FaultPoints = {},
  ) {}

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
    const poll = await this.subscription.poll(this.limits.batchRecordsMax, maxWaitMs);
    for (const tp of poll.revoked) this.positions.delete(tpKey(tp));
    for (const tp of poll.assigned) {
      const offset = this.store.progress(this.group.name, tp);
      this.positions.set(tpKey(tp), { ...tp, offset });
      this.subscription.seek({ ...tp, offset });
    }
    const records = poll.records.filter((r) => this.positions.has(tpKey(r)));
    if (records.length === 0) return 0;
    const commit = this.processBatch(records);
    this.faults.beforeCommit?.();
    this.store.commitBatch(this.group.name, commit);
    for (const p of commit.to) this.positions.set(tpKey(p), p);
    this.appliedCount += commit.applied.length;
    this.faults.afterCommit?.();
    await this.publishOutbox();
    this.faults.afterPublish?.();
    await this.maybeCommitOffsets();
    return records.length;
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
      applied.push({ key: record.key, eventId: id, fingerprint, outcome: outcome.rejection ?? "applied", position: at(record) });
      for (const out of outcome.emits) {
        const emit = group.emit(out);
        outbox.push({ topic: emit.topic, partition: null, key: emit.key, value: emit.value, headers: {} });
      }
    }
    const rows: BatchCommit["rows"] = [];
    for (const [key, s] of states) {
      const value = group.table.encode(s.state);
      rows.push({ key, value, version: s.version });
      // The changelog goes to the input's partition: the table is co-partitioned with it.
      outbox.push({ topic: TOPICS.table(group.name), partition: s.partition, key, value, headers: { [VERSION_HEADER]: String(s.version) } });
    }
    const from = [...next.keys()].map((key) => this.positions.get(key)!);
    return { from, to: [...next.values()], rows, applied, rejections, outbox };
  }

  private loadState(key: string): unknown {
    const row = this.store.row(this.group.name, key);
    return row ? this.group.table.decode(row.value) : this.group.actor.initial();
  }

  private async publishOutbox(): Promise<void> {
    for (;;) {
      const pending = this.store.outbox(this.group.name, this.limits.outboxBatchRecordsMax);
      if (pending.length === 0) return;
      await this.log.produce(pending.map(({ topic, partition, key, value, headers }) => ({
        topic, key, value, headers, ...(partition === null ? {} : { partition }),
      })));
      this.store.deleteOutbox(this.group.name, pending[pending.length - 1]!.id);
    }
  }

  private async maybeCommitOffsets(): Promise<void> {
    const nowMs = Date.now();
    if (nowMs - this.lastOffsetCommitMs < this.limits.offsetCommitIntervalMs || !this.subscription) return;
    this.lastOffsetCommitMs = nowMs;
    await this.subscription.commit([...this.positions.values()]);
  }

  private resyncPositions(): void {
    for (const [key, p] of this.positions) {
      const offset = this.store.progress(this.group.name, p);
      this.positions.set(key, { ...p, offset });
      this.subscription?.seek({ ...p, offset });
    }
  }

  /** Partitions this instance holds and the next offset it will apply in each. */
  assignment(): RecordPosition[] {
    return [...this.positions.values()];
  }
}

const at = (r: LogRecord): RecordPosition => ({ topic: r.topic, partition: r.partition, offset: r.offset });

/** Errors worth a retry: the log or the database was busy or briefly unreachable. */
function isRetryable(error: unknown): boolean {
  const message = error instanceof Error ? error.message : String(error);
  return /SQLITE_BUSY|database is locked|ECONNREFUSED|ETIMEDOUT|timeout/i.test(message);
}

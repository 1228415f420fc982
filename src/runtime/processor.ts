import type { Actor } from "../../actors/types.js";
import type { Log, LogRecord, RecordPosition, Subscription, TopicPartition } from "../log/log.js";
import { StaleProgressError, type StateStore } from "../store/state-store.js";
import { BatchBuilder, tpKey, type Batch } from "./batch.js";
import type { Committer } from "./commit.js";
import { Backoff, isRetryable } from "./errors.js";
import type { AnyGroup } from "./group.js";
import { checkNotAhead, restorePartitions } from "./restore.js";

/** Limits of one processor, unit last. */
export interface ProcessorLimits {
  batchRecordsMax: number;
  pollWaitMs: number;
  /** Committed group offsets are advisory here (progress lives in the store): commit them at most this often. */
  offsetCommitIntervalMs: number;
  /** Retryable failures are retried after a delay that doubles from the first to the max. */
  retryBackoffInitialMs: number;
  retryBackoffMaxMs: number;
  /**
   * After a batch smaller than the maximum, wait this long before the next poll, so
   * that under load batches grow and transactions get fewer: at most this much latency.
   */
  lingerMs: number;
  /** Decoded wallet states kept in memory, at most. */
  stateCacheEntriesMax: number;
  /** Groups with timers: how often the pending timers are scanned for due ones. */
  timerScanIntervalMs: number;
  /** A due timer produced this long ago and still pending is produced again. */
  timerRefireMs: number;
  /** Due timers produced per scan and partition, at most. */
  timerFiringsMax: number;
  /** An input event whose time is further ahead of its record's timestamp is dead-lettered (EVENT_TIME_FUTURE_MAX_SECONDS). */
  eventTimeAheadMaxMs: number;
}

export const DEFAULT_PROCESSOR_LIMITS: ProcessorLimits = {
  batchRecordsMax: 2_000,
  pollWaitMs: 200,
  offsetCommitIntervalMs: 1_000,
  retryBackoffInitialMs: 50,
  retryBackoffMaxMs: 5_000,
  lingerMs: 2,
  stateCacheEntriesMax: 100_000,
  timerScanIntervalMs: 100,
  timerRefireMs: 10_000,
  timerFiringsMax: 1_000,
  eventTimeAheadMaxMs: 300_000,
};

/**
 * Output bytes one batch may send to one partition. The broker refuses a record batch
 * over its message.max.bytes (1 MiB by default); half of that leaves room for its
 * framing and for records larger than the estimate.
 */
export const OUTPUT_PARTITION_BYTES_MAX = 512 * 1024;

/**
 * The records with each topic partition's in offset order, each offset once; the
 * partitions keep their slots, so batches interleave them as they came.
 */
export function inOffsetOrder(records: LogRecord[]): LogRecord[] {
  const byPartition = new Map<string, LogRecord[]>();
  for (const r of records) {
    const key = tpKey(r);
    const list = byPartition.get(key);
    if (list) list.push(r);
    else byPartition.set(key, [r]);
  }
  const queues = new Map<string, { list: LogRecord[]; next: number }>();
  for (const [key, list] of byPartition) {
    list.sort((a, b) => a.offset - b.offset);
    queues.set(key, { list: list.filter((r, i) => i === 0 || r.offset !== list[i - 1]!.offset), next: 0 });
  }
  const ordered: LogRecord[] = [];
  for (const r of records) {
    const queue = queues.get(tpKey(r))!;
    if (queue.next < queue.list.length) ordered.push(queue.list[queue.next++]!);
  }
  return ordered;
}

/** The most bytes a batch's output sends to one topic partition (keys and values). */
function largestOutputBytes(batch: Batch): number {
  const bytes = new Map<string, number>();
  for (const records of batch.output.values()) {
    for (const r of records) {
      const key = `${r.topic}\u0000${r.partition}`;
      bytes.set(key, (bytes.get(key) ?? 0) + r.key.length * 3 + r.value.byteLength);
    }
  }
  return Math.max(0, ...bytes.values());
}

/** Points where tests inject crashes; each is called synchronously at that point. */
export interface FaultPoints {
  beforeCommit?(): void;
  afterCommit?(): void;
  afterPublish?(): void;
}

/**
 * Runs one processor group: consumes its input topics as a consumer group, hands each
 * event to the group's actor, and commits each batch through its Committer: state,
 * progress and output together, or nothing.
 *
 * Exactly-once effects follow from that commit:
 * - a redelivered record is below the stored progress and is skipped;
 * - an event id seen before for the same wallet is skipped (or dead-lettered if its
 *   content differs), however late it comes again;
 * - a crash before the commit loses only work that is redone from the stored
 *   progress; a crash after it (Kafka) re-sends the outbox, whose readers dedupe;
 * - if another process applied the same partition meanwhile (a rebalance in flight),
 *   the commit sees its progress moved and the batch is dropped and redone.
 *
 * Failures: a record that cannot be processed is dead-lettered and the partition goes
 * on; a retryable failure (log or disk away) is retried with bounded exponential
 * backoff, forever; anything else (a broken invariant) rejects `done`, and the process
 * stops.
 */
export class Processor {
  private readonly actor: Actor<unknown, unknown, unknown, unknown>;
  private readonly positions = new Map<string, RecordPosition>();
  /** Partitions assigned but not yet ready; their records wait in the backlog. */
  private readonly unready = new Map<string, TopicPartition>();
  /**
   * Records polled but not yet committed. A failed commit leaves them here to be
   * retried: on Kafka a subscription cannot go back to re-read them.
   */
  private backlog: LogRecord[] = [];
  private readonly cache = new Map<string, { state: unknown; partition: number }>();
  private subscription: Subscription | undefined;
  private running: Promise<void> | undefined;
  private stopping = false;
  private readonly wake = new AbortController();
  private lastOffsetCommitMs = 0;
  private partitions = 0;
  private nextTimerScanMs = 0;
  /** Gaps a replay was tried for, by partition: the backlog head it was tried at. */
  private readonly gapsTried = new Map<string, number>();
  /** Due timers produced and not yet seen fired: when, by wallet, timer id and due time. */
  private readonly firing = new Map<string, number>();

  constructor(
    readonly group: AnyGroup,
    actor: Actor<unknown, unknown, unknown, unknown>,
    private readonly log: Log,
    private readonly store: StateStore,
    private readonly committer: Committer,
    private readonly limits: ProcessorLimits = DEFAULT_PROCESSOR_LIMITS,
    private readonly faults: FaultPoints = {},
    /** The clock actors see (ActorContext.nowMs); tests pass their own. */
    private readonly clock: () => number = Date.now,
  ) {
    this.actor = actor;
  }

  /** Starts the poll loop in the background. A non-retryable error stops it and rejects `done`. */
  start(): void {
    this.running ??= this.loop();
  }

  get done(): Promise<void> {
    return this.running ?? Promise.resolve();
  }

  /** Finishes the batch in hand, commits and sends it, leaves the group. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake.abort();
    await this.running?.catch(() => {});
    await this.subscription?.close();
    this.subscription = undefined;
  }

  private async loop(): Promise<void> {
    const backoff = new Backoff(this.limits.retryBackoffInitialMs, this.limits.retryBackoffMaxMs);
    while (!this.stopping) {
      try {
        const count = await this.step(this.limits.pollWaitMs);
        if (backoff.failures > 0) console.log(`[${this.group.name}] recovered after ${backoff.failures} failed attempts`);
        backoff.reset();
        if (count > 0 && count < this.limits.batchRecordsMax) await this.sleep(this.limits.lingerMs);
      } catch (error) {
        if (!isRetryable(error)) throw error;
        if (error instanceof StaleProgressError) this.resync();
        const delayMs = backoff.next();
        // The first failure and then every tenth: an outage must not flood the log.
        if (backoff.failures % 10 === 1) console.warn(`[${this.group.name}] retrying in ${delayMs} ms after: ${(error as Error).message}`);
        await this.sleep(delayMs);
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    if (this.wake.signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake.signal.addEventListener("abort", () => {
        clearTimeout(timer);
        resolve();
      }, { once: true });
    });
  }

  /**
   * One poll and, if records came, one batch. Public so tests can drive the runtime
   * step by step. The poll comes first, so that partitions taken away are known before
   * anything is sent for them.
   */
  async step(maxWaitMs: number): Promise<number> {
    this.subscription ??= this.log.subscribe({ topics: this.group.inputs.map((i) => i.topic.name), group: this.group.name });
    const room = this.limits.batchRecordsMax - this.backlog.length;
    const poll = room > 0 ? await this.subscription.poll(room, maxWaitMs) : { records: [], assigned: [], revoked: [] };
    this.revoke(poll.revoked);
    for (const tp of poll.assigned) this.unready.set(tpKey(tp), tp);
    for (const record of poll.records) this.backlog.push(record);
    // A Kafka consumer that rejoins re-fetches from the committed offset, and a record of
    // a fetch already in flight may come first (19, then 4..19): applied in arrival
    // order, the builder took 19 and dropped 4..18 as redeliveries (found by `bun run
    // torture`). Each partition's records are put in offset order, once each.
    if (poll.records.length > 0) this.backlog = inOffsetOrder(this.backlog);
    if (poll.revoked.length > 0) this.backlog = this.backlog.filter((r) => this.positions.has(tpKey(r)) || this.unready.has(tpKey(r)));
    await this.publish();
    await this.makeReady();
    await this.fillGaps();
    await this.fireDueTimers();
    const ready = this.readyRecords();
    if (ready.length === 0) return 0;
    this.partitions ||= await this.log.partitionCount(this.group.inputs[0]!.topic.name);
    const { records, batch } = this.build(ready);
    this.faults.beforeCommit?.();
    this.committer.commit(this.group.name, batch);
    this.settle(records, batch);
    this.faults.afterCommit?.();
    await this.publish();
    this.faults.afterPublish?.();
    await this.maybeCommitOffsets();
    return records.length;
  }

  private revoke(revoked: TopicPartition[]): void {
    if (revoked.length === 0) return;
    for (const tp of revoked) {
      this.positions.delete(tpKey(tp));
      this.unready.delete(tpKey(tp));
    }
    const gone = new Set(revoked.map((tp) => tp.partition));
    for (const [key, entry] of this.cache) if (gone.has(entry.partition)) this.cache.delete(key);
    console.log(`[${this.group.name}] revoked partitions ${[...gone].join(",")}`);
  }

  /**
   * Makes assigned partitions ready: restored from the changelog where the committer
   * needs it, checked against the log's end (a log that went backwards is refused),
   * then positioned at the stored progress. A failure leaves them unready, with their
   * records in the backlog, for the next step.
   */
  private async makeReady(): Promise<void> {
    if (this.unready.size === 0) return;
    const tps = [...this.unready.values()];
    const partitions = [...new Set(tps.map((tp) => tp.partition))];
    if (this.committer.restoresOnAssign) {
      const started = Date.now();
      const count = await restorePartitions(this.group, this.log, this.store, partitions);
      console.log(`[${this.group.name}] restored partitions ${partitions.join(",")} from ${count} changelog records in ${Date.now() - started} ms`);
    }
    const stored = tps.map((tp) => ({ ...tp, offset: this.store.progress(this.group.name, tp) }));
    await checkNotAhead(this.group.name, this.log, stored);
    for (const position of stored) {
      this.positions.set(tpKey(position), position);
      this.subscription?.seek(position);
      this.unready.delete(tpKey(position));
    }
    // Records polled before belong to a progress that may have gone back (a partition
    // whose changelog another instance wrote, rebuilt from it): decided now, they would
    // leave a gap before them. They are read again (see fillGaps).
    const seeked = new Set(stored.map(tpKey));
    this.backlog = this.backlog.filter((r) => !seeked.has(tpKey(r)));
    for (const [key, entry] of this.cache) if (partitions.includes(entry.partition)) this.cache.delete(key);
  }

  /**
   * Reads again what lies between a partition's progress and its first record in the
   * backlog. A subscription resumes where it was when a partition's progress goes back
   * (a Kafka consumer cannot seek backwards), so after a rebuild the records in between
   * come from a replay, put in front of the backlog. A gap the replay cannot fill (the
   * records are gone, by retention) is left as it is, once.
   */
  private async fillGaps(): Promise<void> {
    const heads = new Map<string, number>();
    for (const r of this.backlog) {
      const key = tpKey(r);
      if ((heads.get(key) ?? Number.POSITIVE_INFINITY) > r.offset) heads.set(key, r.offset);
    }
    const missing: LogRecord[] = [];
    for (const [key, position] of this.positions) {
      const head = heads.get(key);
      if (head === undefined || head <= position.offset || this.gapsTried.get(key) === head) continue;
      const found: LogRecord[] = [];
      for await (const batch of this.log.replay(position.topic, [position])) {
        for (const r of batch) if (r.partition === position.partition && r.offset >= position.offset && r.offset < head) found.push(r);
        if (batch.some((r) => r.partition === position.partition && r.offset >= head - 1)) break;
      }
      // Only a replay that came back counts as tried: one the log failed is tried again.
      this.gapsTried.set(key, head);
      console.warn(`[${this.group.name}] ${position.topic}/${position.partition}: read ${found.length} records again between progress ${position.offset} and ${head}`);
      missing.push(...found);
    }
    if (missing.length > 0) this.backlog = [...missing, ...this.backlog];
  }

  /** The backlog's first records of ready partitions, up to a batch. */
  private readyRecords(): LogRecord[] {
    const records: LogRecord[] = [];
    for (const record of this.backlog) {
      if (records.length >= this.limits.batchRecordsMax) break;
      if (this.positions.has(tpKey(record))) records.push(record);
    }
    return records;
  }

  /**
   * Runs the actor over the records. The output a batch sends to one partition goes in
   * one request to the broker, which refuses a request over its size limit (1 MiB by
   * default): a batch whose output to one partition passes OUTPUT_PARTITION_BYTES_MAX
   * is built again from its first half, the rest waiting for the next batch.
   */
  private build(ready: LogRecord[]): { records: LogRecord[]; batch: Batch } {
    const owner = this.group.name;
    for (let records = ready; ; records = records.slice(0, Math.ceil(records.length / 2))) {
      const builder = new BatchBuilder(this.group, this.actor, this.partitions, {
        state: (walletId) => this.state(walletId),
        applied: (walletId, eventId) => this.store.appliedEvent(owner, walletId, eventId),
        position: (tp) => this.positions.get(tpKey(tp))?.offset ?? 0,
        nowMs: this.clock(),
        timer: (walletId, timerId) => this.store.timer(owner, walletId, timerId),
        eventTimeAheadMaxMs: this.limits.eventTimeAheadMaxMs,
        ...(this.committer.restoresOnAssign ? { deliveredBefore: (partition: number) => this.store.progress(owner, { topic: this.group.changelog, partition }) } : {}),
      });
      for (const record of records) builder.add(record);
      const batch = builder.finish();
      if (records.length === 1 || largestOutputBytes(batch) <= OUTPUT_PARTITION_BYTES_MAX) return { records, batch };
    }
  }

  /**
   * The punctuator: produces the due timers of the partitions this instance holds onto
   * the group's timer topic, from which they come back as events (src/runtime/timers.ts).
   * Producing is at least once; the firing is decided once. A timer produced and still
   * pending after `timerRefireMs` (its record was lost, or its firing is still queued
   * behind a backlog) is produced again.
   */
  private async fireDueTimers(): Promise<void> {
    const topic = this.group.timers;
    const nowMs = this.clock();
    if (!topic || nowMs < this.nextTimerScanMs) return;
    this.nextTimerScanMs = nowMs + this.limits.timerScanIntervalMs;
    for (const [key, producedMs] of this.firing) if (nowMs - producedMs >= this.limits.timerRefireMs) this.firing.delete(key);
    const held = [...this.positions.values()].filter((p) => p.topic === topic.name).map((p) => p.partition);
    const records = [];
    const keys: string[] = [];
    for (const partition of held) {
      for (const due of this.store.dueTimers(this.group.name, partition, nowMs, this.limits.timerFiringsMax)) {
        const fired = { walletId: due.key, timerId: due.timerId, dueMs: due.dueMs! };
        const key = `${fired.walletId}\u0000${fired.timerId}\u0000${fired.dueMs}`;
        if (this.firing.has(key)) continue;
        keys.push(key);
        records.push({ topic: topic.name, key: fired.walletId, partition, value: topic.codec.encode(fired) });
      }
    }
    if (records.length === 0) return;
    await this.log.produce(records);
    for (const key of keys) this.firing.set(key, nowMs);
  }

  private state(walletId: string): unknown {
    const cached = this.cache.get(walletId);
    if (cached) return cached.state;
    const row = this.store.row(this.group.name, walletId);
    return row ? this.group.table.codec.decode(row.value) : this.actor.initial();
  }

  /** After a commit: the batch's records leave the backlog, progress and cache move on. */
  private settle(records: LogRecord[], batch: Batch): void {
    const taken = new Set(records);
    this.backlog = this.backlog.filter((r) => !taken.has(r));
    for (const p of batch.to) this.positions.set(tpKey(p), p);
    if (this.cache.size + batch.states.size > this.limits.stateCacheEntriesMax) this.cache.clear();
    for (const [walletId, change] of batch.states) this.cache.set(walletId, change);
  }

  /**
   * Sends the committed output of the partitions this instance holds. A partition whose
   * changelog someone else wrote meanwhile is made unready, to be restored again.
   */
  private async publish(): Promise<void> {
    if (this.positions.size === 0) return;
    const lost = await this.committer.publish(this.group.name, new Set([...this.positions.values()].map((p) => p.partition)));
    if (lost.length === 0) return;
    console.warn(`[${this.group.name}] partitions ${lost.join(",")} were written by another instance: restoring them again`);
    for (const [key, position] of this.positions) {
      if (!lost.includes(position.partition)) continue;
      this.positions.delete(key);
      this.unready.set(key, { topic: position.topic, partition: position.partition });
    }
  }

  private async maybeCommitOffsets(): Promise<void> {
    const nowMs = Date.now();
    if (nowMs - this.lastOffsetCommitMs < this.limits.offsetCommitIntervalMs || !this.subscription) return;
    this.lastOffsetCommitMs = nowMs;
    await this.subscription.commit([...this.positions.values()]);
  }

  /**
   * After another process moved the stored progress (a shared database), continue
   * from it: records below it are dropped from the backlog, cached states (which may
   * be older than the stored ones) are forgotten, and the subscription resumes after
   * the backlog, since the backlog still holds what lies between.
   */
  private resync(): void {
    this.cache.clear();
    for (const [key, p] of this.positions) this.positions.set(key, { ...p, offset: this.store.progress(this.group.name, p) });
    this.backlog = this.backlog.filter((r) => r.offset >= (this.positions.get(tpKey(r))?.offset ?? Number.POSITIVE_INFINITY));
    for (const p of this.positions.values()) {
      const held = this.backlog.filter((r) => r.partition === p.partition && r.topic === p.topic);
      this.subscription?.seek({ ...p, offset: held.length > 0 ? held[held.length - 1]!.offset + 1 : p.offset });
    }
  }
}

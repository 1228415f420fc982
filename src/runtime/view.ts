import type { Log, LogRecord, RecordPosition, Subscription, TopicPartition } from "../log/log.js";
import type { StateStore } from "../store/state-store.js";
import { Signal } from "../signal.js";
import type { Codec } from "./codecs.js";
import { changelogRows, lastPositions, THROUGH_HEADER } from "./processor.js";

export interface ViewLimits {
  batchRecordsMax: number;
  pollWaitMs: number;
  retryBackoffMs: number;
  /** As a processor's: wait after a small batch so that batches grow under load. */
  lingerMs: number;
}

const DEFAULT_VIEW_LIMITS: ViewLimits = { batchRecordsMax: 2_000, pollWaitMs: 200, retryBackoffMs: 500, lingerMs: 10 };

const tpKey = (tp: TopicPartition) => `${tp.topic}\u0000${tp.partition}`;

/**
 * A read-only replica of a group's table, fed by its changelog topic (Goka's view).
 * It reads every partition, with no consumer group, into the state store under the
 * owner "view:<topic>", so any API instance can answer for any wallet, whichever
 * instance runs the group. Each changelog value carries the input offset that made it
 * (its version); an older version never replaces a newer one, so a re-sent outbox
 * cannot move the view backwards.
 */
export class TableView<T> {
  readonly owner: string;
  private subscription: Subscription | undefined;
  private running: Promise<void> | undefined;
  private stopping = false;
  private readonly positions = new Map<string, RecordPosition>();
  /** End offsets when the view started; reaching them is "caught up". */
  private startEnds: number[] | undefined;

  constructor(
    readonly topic: string,
    private readonly codec: Codec<T>,
    private readonly log: Log,
    private readonly store: StateStore,
    private readonly limits: ViewLimits = DEFAULT_VIEW_LIMITS,
  ) {
    this.owner = `view:${topic}`;
    this.throughKey = `${topic}#through`;
  }

  /** Progress-table key under which the through offsets are stored. */
  private readonly throughKey: string;

  /** Per partition: the group's input offset the view has caught up to (THROUGH_HEADER). */
  private readonly through = new Map<number, number>();
  private readonly advanced = new Signal();
  /** Records polled but not yet committed; retried after a failed commit. */
  private backlog: LogRecord[] = [];
  private healthy = true;

  /**
   * Waits until the view includes the group's input record at `position` (same
   * partition number: the table is co-partitioned with the input), or `timeoutMs`
   * passes. Resolves true if it does. Read-your-writes for the API.
   */
  async waitFor(position: { partition: number; offset: number }, timeoutMs: number): Promise<boolean> {
    const includes = () => (this.through.get(position.partition) ?? 0) > position.offset;
    const deadline = Date.now() + timeoutMs;
    while (!includes()) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await this.advanced.wait(left);
    }
    return true;
  }

  get(key: string): T | undefined {
    const row = this.store.row(this.owner, key);
    return row ? this.codec.decode(row.value) : undefined;
  }

  start(): void {
    this.running ??= this.loop();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.running?.catch(() => {});
    await this.subscription?.close();
  }

  /**
   * True once the view has read everything that was in the changelog when it started,
   * and its last read succeeded: a view that cannot reach its log is not ready.
   */
  caughtUp(): boolean {
    if (!this.healthy || !this.startEnds || this.positions.size < this.startEnds.length) return false;
    return this.startEnds.every((end, partition) => (this.positions.get(tpKey({ topic: this.topic, partition }))?.offset ?? 0) >= end);
  }

  private async loop(): Promise<void> {
    while (!this.stopping) {
      try {
        const count = await this.step(this.limits.pollWaitMs);
        if (count > 0 && count < this.limits.batchRecordsMax) await Bun.sleep(this.limits.lingerMs);
        this.healthy = true;
      } catch (error) {
        // Records whose commit failed stay in the backlog and are retried.
        this.healthy = false;
        console.warn(`[${this.owner}] retrying after: ${(error as Error).message}`);
        await Bun.sleep(this.limits.retryBackoffMs);
      }
    }
  }

  /** One poll and, if records came, one commit. */
  async step(maxWaitMs: number): Promise<number> {
    this.startEnds ??= await this.log.endOffsets(this.topic);
    this.subscription ??= this.log.subscribe({ topics: [this.topic] });
    const room = this.limits.batchRecordsMax - this.backlog.length;
    const poll = room > 0 ? await this.subscription.poll(room, maxWaitMs) : { records: [], assigned: [], revoked: [] };
    for (const tp of poll.revoked) this.positions.delete(tpKey(tp));
    for (const tp of poll.assigned) {
      this.through.set(tp.partition, this.store.progress(this.owner, { topic: this.throughKey, partition: tp.partition }));
      const position = { ...tp, offset: this.store.progress(this.owner, tp) };
      this.positions.set(tpKey(tp), position);
      this.subscription.seek(position);
    }
    // Polled records stay in the backlog until their commit succeeds: a subscription
    // on Kafka cannot go back to read them again.
    this.backlog.push(...poll.records);
    this.backlog = this.backlog.filter((r) => {
      const position = this.positions.get(tpKey(r));
      return position !== undefined && r.offset >= position.offset;
    });
    const fresh = this.backlog;
    if (fresh.length === 0) return 0;
    const next = lastPositions(fresh);
    const through = new Map(this.through);
    for (const r of fresh) {
      const offset = Number(r.headers[THROUGH_HEADER] ?? 0);
      if (offset > (through.get(r.partition) ?? 0)) through.set(r.partition, offset);
    }
    // The through offsets are kept with the view's progress, so that after a restart
    // the view still knows what it includes.
    const throughPositions = [...through].map(([partition, offset]) => ({ topic: this.throughKey, partition, offset }));
    this.store.mergeRows(this.owner, changelogRows(fresh), [...next, ...throughPositions]);
    this.backlog = [];
    for (const p of next) this.positions.set(tpKey(p), p);
    for (const [partition, offset] of through) this.through.set(partition, offset);
    this.advanced.notify();
    return fresh.length;
  }
}

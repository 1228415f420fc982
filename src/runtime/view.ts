import type { Log, RecordPosition, Subscription, TopicPartition } from "../log/log.js";
import type { StateStore, TableRow } from "../store/state-store.js";
import type { Codec } from "./codecs.js";
import { VERSION_HEADER } from "./processor.js";

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

  /** True once the view has read everything that was in the changelog when it started. */
  caughtUp(): boolean {
    if (!this.startEnds || this.positions.size < this.startEnds.length) return false;
    return this.startEnds.every((end, partition) => (this.positions.get(tpKey({ topic: this.topic, partition }))?.offset ?? 0) >= end);
  }

  private async loop(): Promise<void> {
    while (!this.stopping) {
      try {
        const count = await this.step(this.limits.pollWaitMs);
        if (count > 0 && count < this.limits.batchRecordsMax) await Bun.sleep(this.limits.lingerMs);
      } catch (error) {
        console.warn(`[${this.owner}] retrying after: ${(error as Error).message}`);
        await Bun.sleep(this.limits.retryBackoffMs);
      }
    }
  }

  /** One poll and, if records came, one commit. */
  async step(maxWaitMs: number): Promise<number> {
    this.startEnds ??= await this.log.endOffsets(this.topic);
    this.subscription ??= this.log.subscribe({ topics: [this.topic] });
    const poll = await this.subscription.poll(this.limits.batchRecordsMax, maxWaitMs);
    for (const tp of poll.revoked) this.positions.delete(tpKey(tp));
    for (const tp of poll.assigned) {
      const position = { ...tp, offset: this.store.progress(this.owner, tp) };
      this.positions.set(tpKey(tp), position);
      this.subscription.seek(position);
    }
    const rows = new Map<string, TableRow>();
    const next = new Map<string, RecordPosition>();
    for (const record of poll.records) {
      const position = this.positions.get(tpKey(record));
      if (!position || record.offset < position.offset) continue;
      next.set(tpKey(record), { topic: record.topic, partition: record.partition, offset: record.offset + 1 });
      const version = Number(record.headers[VERSION_HEADER] ?? -1);
      const held = rows.get(record.key);
      if (!held || held.version < version) rows.set(record.key, { key: record.key, value: record.value, version });
    }
    if (next.size === 0) return 0;
    this.store.commitView(this.owner, [...rows.values()], [...next.values()]);
    for (const [key, p] of next) this.positions.set(key, p);
    return poll.records.length;
  }
}

import type { EmbeddedLog } from "../log/embedded.js";
import type { Producer, RecordPosition, TopicAdmin } from "../log/log.js";
import type { StateStore } from "../store/state-store.js";
import type { Batch } from "./batch.js";
import { changelogTopic } from "./topic.js";

/**
 * How a processor makes a batch's effects permanent: its state, its progress and its
 * output, all or nothing. Two ways, one per kind of log.
 */
export interface Committer {
  /** Whether a partition's table must be restored from its changelog when it is assigned. */
  readonly restoresOnAssign: boolean;
  /** Commits a batch atomically. Throws StaleProgressError if someone else moved the progress. */
  commit(owner: string, batch: Batch): void;
  /**
   * Sends output that is committed but not yet in the log, for the input partitions
   * this instance holds. Resolves once the log has it, with the partitions found to
   * have been written by another instance meanwhile: they must be restored again.
   */
  publish(owner: string, held: ReadonlySet<number>): Promise<number[]>;
}

/**
 * On the embedded log the state store lives in the log's own database: one SQLite
 * transaction writes the state, the progress and the output records into the log, so
 * there is nothing left to send afterwards and nothing to send twice (Kafka Streams'
 * atomic commit, with SQLite as the transaction).
 */
export class SharedCommitter implements Committer {
  readonly restoresOnAssign = false;

  constructor(private readonly log: EmbeddedLog, private readonly store: StateStore) {
    if (store.sqlite !== log.sqlite) throw new Error("SharedCommitter needs the state store on the log's own connection");
  }

  commit(owner: string, batch: Batch): void {
    const records = [...batch.output.values()].flat();
    this.store.transaction(() => {
      this.store.writeBatch(owner, batch);
      this.log.appendInTransaction(records, Date.now());
    });
    this.log.announce(records.map((r) => r.topic));
  }

  async publish(): Promise<number[]> {
    return [];
  }
}

/** Records one publish carries at most; one batch's output is never split. */
const PUBLISH_RECORDS_MAX = 20_000;

/**
 * On Kafka the state lives in this instance's state.db: the batch's state, progress
 * and output (an outbox, per input partition) commit in one SQLite transaction, then
 * the outbox is produced and deleted. A crash in between produces it again after the
 * restart; consumers dedupe by event id, and changelog readers by version.
 *
 * Two rules keep a publish honest when it is cut short or comes late:
 * - The changelog (rows, then the batch record) goes first, the emits and dead letters
 *   after it: a produce spans partitions and is not atomic. A decision is never seen
 *   by another wallet before the changelog has it, so an instance that takes the
 *   partition over never decides the same input differently from what others saw.
 *   The batch record carries the batch's output and where delivered output ended, so
 *   a restoring instance sends again whatever may not have gone out (restore.ts).
 * - An instance writes to a partition's changelog only while that changelog ends
 *   where this instance last left it. If someone else wrote to it (the partition moved
 *   while this instance was cut off), its outbox is not sent: the partition is
 *   restored again, which decides whether the outbox is still news (see restore.ts).
 *   This narrows a cut-off instance's window to one round trip to the broker; only
 *   transactional producers would close it.
 */
export class OutboxCommitter implements Committer {
  readonly restoresOnAssign = true;

  constructor(private readonly log: Producer & Pick<TopicAdmin, "endOffsets">, private readonly store: StateStore) {}

  commit(owner: string, batch: Batch): void {
    this.store.transaction(() => {
      this.store.writeBatch(owner, batch);
      for (const [partition, records] of batch.output) this.store.addOutbox(owner, partition, records);
    });
  }

  async publish(owner: string, held: ReadonlySet<number>): Promise<number[]> {
    const entries = this.store.outbox(owner, held, PUBLISH_RECORDS_MAX);
    if (entries.length === 0) return [];
    const changelog = changelogTopic(owner);
    const ends = await this.log.endOffsets(changelog);
    const lost = new Set(entries.map((e) => e.partition).filter((p) => ends[p] !== this.store.progress(owner, { topic: changelog, partition: p })));
    const sending = entries.filter((e) => !lost.has(e.partition));
    if (sending.length > 0) {
      const records = sending.flatMap((e) => e.records);
      // The changelog first: once it has a batch, the batch's decisions stand (an
      // instance that takes the partition over adopts them and sends their output
      // again); output sent before it could be contradicted by a new decision.
      const written = await this.log.produce(records.filter((r) => r.topic === changelog));
      // What this instance wrote to the changelog is known at once: if the output then
      // fails, the next publish must not take its own records for another instance's.
      // It sends the entry again, changelog records included (duplicates, which
      // readers take as they took the first).
      this.store.transaction(() => this.store.writeProgress(owner, endsAfter(written)));
      await this.log.produce(records.filter((r) => r.topic !== changelog));
      this.store.transaction(() => this.store.deleteOutbox(sending.map((e) => e.id)));
    }
    return [...lost];
  }
}

/** The next offset after the last of `positions`, per partition. */
function endsAfter(positions: RecordPosition[]): RecordPosition[] {
  const ends = new Map<number, RecordPosition>();
  for (const p of positions) if ((ends.get(p.partition)?.offset ?? -1) < p.offset + 1) ends.set(p.partition, { ...p, offset: p.offset + 1 });
  return [...ends.values()];
}

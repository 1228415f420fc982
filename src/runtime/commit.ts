import type { EmbeddedLog } from "../log/embedded.js";
import type { Producer } from "../log/log.js";
import type { StateStore } from "../store/state-store.js";
import type { Batch } from "./batch.js";

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
   * this instance holds. Resolves once the log has it.
   */
  publish(owner: string, held: ReadonlySet<number>): Promise<void>;
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

  async publish(): Promise<void> {}
}

/** Records one publish carries at most; one batch's output is never split. */
const PUBLISH_RECORDS_MAX = 20_000;

/**
 * On Kafka the state lives in this instance's state.db: the batch's state, progress
 * and output (an outbox, per input partition) commit in one SQLite transaction, then
 * the outbox is produced and deleted. A crash in between produces it again after the
 * restart; consumers dedupe by event id, and changelog readers by version. An instance
 * sends only the outbox of partitions it holds: when a partition comes back, restore
 * decides whether what it kept is still news (see restore.ts).
 */
export class OutboxCommitter implements Committer {
  readonly restoresOnAssign = true;

  constructor(private readonly log: Producer, private readonly store: StateStore) {}

  commit(owner: string, batch: Batch): void {
    this.store.transaction(() => {
      this.store.writeBatch(owner, batch);
      for (const [partition, records] of batch.output) this.store.addOutbox(owner, partition, records);
    });
  }

  async publish(owner: string, held: ReadonlySet<number>): Promise<void> {
    const entries = this.store.outbox(owner, held, PUBLISH_RECORDS_MAX);
    if (entries.length === 0) return;
    // One produce: each partition's records go in one request, rows with their batch record.
    await this.log.produce(entries.flatMap((e) => e.records));
    this.store.deleteOutbox(entries.map((e) => e.id));
  }
}

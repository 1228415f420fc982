import { EmbeddedLog } from "../../src/log/embedded.js";
import { GROUPS } from "../../src/groups/index.js";
import type { Config } from "../../src/config.js";
import { OutboxCommitter, SharedCommitter, type Committer } from "../../src/runtime/commit.js";
import { topicSpecs, type AnyGroup } from "../../src/runtime/group.js";
import { DEFAULT_PROCESSOR_LIMITS, Processor, type FaultPoints } from "../../src/runtime/processor.js";
import { StateStore } from "../../src/store/state-store.js";
import { openSqlite } from "../../src/store/sqlite.js";
import { DecodeError } from "../../src/runtime/codec.js";
import { testConfig } from "../support.js";

/** A codec for the test groups' own topics and tables: JSON, any value. */
export const jsonCodec = {
  encode: (value: unknown) => new TextEncoder().encode(JSON.stringify(value)),
  // biome-ignore lint: test values are whatever the test put in.
  decode: (bytes: Uint8Array): any => {
    try {
      return JSON.parse(new TextDecoder().decode(bytes));
    } catch {
      throw new DecodeError("undecodable", "not JSON");
    }
  },
};

export const PARTITIONS = 3;
export const config: Config = testConfig(":memory:", { PARTITIONS: String(PARTITIONS) });
// Small batches make crashes land between batches as well as inside them.
export const limits = { ...DEFAULT_PROCESSOR_LIMITS, batchRecordsMax: 4, offsetCommitIntervalMs: 0, retryBackoffInitialMs: 1, retryBackoffMaxMs: 2, timerScanIntervalMs: 0 };

/** A crash of the process at a fault point. */
export class Crash extends Error {}
/** A failure the runtime must take as "the disk is busy": retried, the process living on. */
export class TransientFailure extends Error {
  readonly code = "SQLITE_BUSY";
  override readonly name = "SQLiteError";
}

/**
 * How a runtime commits, as the two logs do: "shared" is the embedded log, state in the
 * log's own database and one transaction per batch; "outbox" is the Kafka way, state in
 * a store of its own, an outbox produced after the commit, and partitions restored from
 * their changelogs when they move to another instance.
 */
export type Mode = "shared" | "outbox";

/**
 * One runtime over in-memory SQLite: the databases play the disk, the processors the
 * process. Crashing a processor throws at a fault point and starts a new one on the
 * same disk, as a restarted process would.
 */
export class Harness {
  readonly log = new EmbeddedLog(":memory:", { pollMs: 1 });
  store: StateStore;
  committer: Committer;
  readonly processors = new Map<string, Processor>();
  /** Groups whose next commit fails once with a retryable error. */
  readonly transient = new Set<string>();
  /** The processors' clock (ActorContext.nowMs, and when timers are due); the wall clock when unset. */
  nowMs: number | undefined;

  constructor(readonly mode: Mode, readonly groups: readonly AnyGroup[] = GROUPS) {
    this.store = this.newStore();
    this.committer = this.newCommitter();
  }

  newStore(): StateStore {
    return this.mode === "shared" ? new StateStore(this.log.sqlite) : new StateStore(openSqlite(":memory:", { durability: "normal", busyTimeoutMs: 0 }));
  }

  private newCommitter(): Committer {
    return this.mode === "shared" ? new SharedCommitter(this.log, this.store) : new OutboxCommitter(this.log, this.store);
  }

  /** Stops the processors and starts them again as an instance on `store` (outbox mode). */
  async restartOn(store: StateStore): Promise<void> {
    for (const p of this.processors.values()) await p.stop();
    this.store = store;
    this.committer = this.newCommitter();
    for (const group of this.groups) this.processors.set(group.name, this.fresh(group.name, {}));
  }

  async init(): Promise<void> {
    await this.log.ensureTopics(topicSpecs(this.groups, PARTITIONS));
    for (const group of this.groups) this.processors.set(group.name, this.fresh(group.name, {}));
  }

  group(name: string): AnyGroup {
    return this.groups.find((g) => g.name === name)!;
  }

  fresh(name: string, faults: FaultPoints): Processor {
    const transient = {
      beforeCommit: () => {
        if (this.transient.delete(name)) throw new TransientFailure("database is locked (injected)");
      },
    };
    const group = this.group(name);
    const clock = () => this.nowMs ?? Date.now();
    return new Processor(group, group.actor(config), this.log, this.store, this.committer, limits, { ...transient, ...faults }, clock);
  }

  /** Another instance takes over every group: an empty store of its own, the same log. */
  async moveToNewInstance(): Promise<void> {
    if (this.mode !== "outbox") throw new Error("only the outbox mode has instances with stores of their own");
    const old = this.store;
    await this.restartOn(this.newStore());
    old.close();
  }

  /** The same processor hits a retryable failure before its commit, and carries on. */
  async stepWithTransientFailure(name: string): Promise<void> {
    this.transient.add(name);
    try {
      await this.processors.get(name)!.step(0);
      await this.processors.get(name)!.step(0);
    } catch (error) {
      if (!(error instanceof TransientFailure)) throw error;
    }
    this.transient.delete(name);
  }

  /** Runs one step of a group; with `crashAt`, the process dies at that point and restarts. */
  async step(name: string, crashAt?: keyof FaultPoints): Promise<void> {
    if (!crashAt) {
      await this.processors.get(name)!.step(0);
      return;
    }
    const crashing = this.fresh(name, { [crashAt]: () => { throw new Crash(); } });
    await this.processors.get(name)!.stop();
    try {
      // The assignment comes on the first poll, records on the next.
      await crashing.step(0);
      await crashing.step(0);
    } catch (error) {
      if (!(error instanceof Crash)) throw error;
    }
    await crashing.stop();
    this.processors.set(name, this.fresh(name, {}));
  }

  async drain(): Promise<void> {
    for (let round = 0; round < 500; round++) {
      let moved = 0;
      for (const p of this.processors.values()) moved += await p.step(0);
      if (moved === 0 && round > 2) return;
    }
    throw new Error("runtime did not drain");
  }

  close(): void {
    if (this.mode === "outbox") this.store.close();
    this.log.sqlite.close();
  }
}

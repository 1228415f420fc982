import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { balanceTableCodec, depositCodec, flaggerTableCodec } from "../../src/runtime/codecs.js";
import { DEFAULT_PROCESSOR_LIMITS, Processor, type FaultPoints } from "../../src/runtime/processor.js";
import { buildGroups, TOPICS, topicSpecs, type GroupName } from "../../src/runtime/topology.js";
import { TableView } from "../../src/runtime/view.js";
import { EmbeddedLog } from "../../src/log/embedded.js";
import { partitionForKey } from "../../src/log/murmur2.js";
import { StateStore } from "../../src/store/state-store.js";
import { testConfig } from "../support.js";

const PARTITIONS = 3;
const config = testConfig(":memory:", { PARTITIONS: String(PARTITIONS) });
const groups = buildGroups(config);
// Small batches make crashes land between batches as well as inside them.
const limits = { ...DEFAULT_PROCESSOR_LIMITS, batchRecordsMax: 4, offsetCommitIntervalMs: 0 };

class Crash extends Error {}
class TransientFailure extends Error {}

interface Deposit {
  wallet: string;
  id: string;
  amount: bigint;
  timeMs: number;
}

/** One runtime over in-memory SQLite: the databases play the disk, the processors the process. */
class Harness {
  readonly log = new EmbeddedLog(":memory:", { pollMs: 1 });
  store = new StateStore(":memory:");
  processors = new Map<GroupName, Processor>();

  async init() {
    await this.log.ensureTopics(topicSpecs(PARTITIONS));
    for (const name of ["balance", "threshold", "flagger"] as const) this.processors.set(name, this.fresh(name, {}));
  }

  /** With `restore`, processors restore from the changelogs on assignment, as on Kafka. */
  restoreOnAssign = false;

  fresh(name: GroupName, faults: FaultPoints): Processor {
    const transient = {
      beforeCommit: () => {
        if (this.transient.delete(name)) throw new TransientFailure("database is locked (injected)");
      },
    };
    return new Processor(groups[name], this.log, this.store, limits, { ...transient, ...faults }, this.restoreOnAssign);
  }

  /**
   * Another instance takes over every group: an empty state.db of its own, the same
   * log. What it knows comes from the changelogs alone.
   */
  async moveToNewInstance(): Promise<void> {
    for (const p of this.processors.values()) await p.stop();
    this.store.close();
    this.store = new StateStore(":memory:");
    this.restoreOnAssign = true;
    for (const name of ["balance", "threshold", "flagger"] as const) this.processors.set(name, this.fresh(name, {}));
  }

  async produce(deposits: Deposit[]) {
    await this.log.produce(deposits.map((d) => ({
      topic: TOPICS.deposits,
      key: d.wallet,
      value: depositCodec.encode({ depositId: d.id, walletId: d.wallet, amountMinor: d.amount, eventTimeMs: d.timeMs }),
    })));
  }

  /** Runs one step of a group; with `crashAt`, the process dies at that point and restarts. */
  /** Groups whose next commit fails once with a retryable error, the process living on. */
  readonly transient = new Set<GroupName>();

  /** The same processor hits a retryable failure before its commit, and carries on. */
  async stepWithTransientFailure(name: GroupName) {
    this.transient.add(name);
    try {
      await this.processors.get(name)!.step(0);
      await this.processors.get(name)!.step(0);
    } catch (error) {
      if (!(error instanceof TransientFailure)) throw error;
    }
    this.transient.delete(name);
  }

  async step(name: GroupName, crashAt?: keyof FaultPoints) {
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

  async drain() {
    for (let round = 0; round < 500; round++) {
      let moved = 0;
      for (const p of this.processors.values()) moved += await p.step(0);
      if (moved === 0 && round > 2) return;
    }
    throw new Error("runtime did not drain");
  }

  balances(): Map<string, bigint> {
    const out = new Map<string, bigint>();
    for (const w of WALLETS) {
      const row = this.store.row("balance", w);
      if (row) out.set(w, balanceTableCodec.decode(row.value).balanceMinor);
    }
    return out;
  }

  /** The deposits the balance group has committed, per its stored progress. */
  committedDeposits(): Deposit[] {
    return Array.from({ length: PARTITIONS }, (_, partition) => {
      const end = this.store.progress("balance", { topic: TOPICS.deposits, partition });
      return end === 0 ? [] : this.log.read({ topic: TOPICS.deposits, partition, offset: 0 }, end);
    }).flat().map((record) => {
      const d = depositCodec.decode(record.value);
      return { wallet: d.walletId, id: d.depositId, amount: d.amountMinor, timeMs: d.eventTimeMs };
    });
  }

  close() {
    this.store.close();
    this.log.sqlite.close();
  }
}

const WALLETS = ["alice", "bob", "carol", "dave"];
const deposit = fc.record({
  wallet: fc.constantFrom(...WALLETS),
  // Few ids, so the same id comes again: sometimes with the same amount, sometimes not.
  id: fc.constantFrom("a", "b", "c", "d", "e", "f", "g", "h"),
  amount: fc.oneof(fc.constantFrom(1n, 500_000n, 600_000n, 1_000_000n), fc.bigInt({ min: 1n, max: 700_000n })),
  timeMs: fc.oneof(fc.constantFrom(0, 119_999, 120_000), fc.integer({ min: 0, max: 300_000 })),
});

/** The model: a Map from wallet to balance; the first amount seen for an id wins. */
function model(deposits: Deposit[]): { balances: Map<string, bigint>; counted: Deposit[] } {
  const seen = new Set<string>();
  const balances = new Map<string, bigint>();
  const counted: Deposit[] = [];
  for (const d of deposits) {
    const key = `${d.wallet}/${d.id}`;
    if (seen.has(key)) continue;
    seen.add(key);
    counted.push(d);
    balances.set(d.wallet, (balances.get(d.wallet) ?? 0n) + d.amount);
  }
  return { balances, counted };
}

function breached(deposits: Deposit[], wallet: string): boolean {
  const mine = deposits.filter((d) => d.wallet === wallet);
  return mine.some((s) => mine.filter((d) => s.timeMs <= d.timeMs && d.timeMs < s.timeMs + 120_000).reduce((sum, d) => sum + d.amount, 0n) > 1_000_000n);
}

describe("runtime", () => {
  test("replay idempotence: delivering a prefix of the events again changes nothing", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(deposit, { minLength: 1, maxLength: 20 }), fc.nat(), async (deposits, cut) => {
        const h = new Harness();
        try {
          await h.init();
          await h.produce(deposits);
          await h.drain();
          const once = h.balances();
          // Redelivery by a producer that re-sends: the same ids at new offsets, read by
          // freshly started processors.
          const prefix = deposits.slice(0, cut % (deposits.length + 1));
          await h.produce(prefix);
          for (const name of ["balance", "threshold"] as const) {
            const replayer = h.fresh(name, {});
            await h.processors.get(name)!.stop();
            h.processors.set(name, replayer);
          }
          await h.drain();
          expect(h.balances()).toEqual(once);
          expect(once).toEqual(model(deposits).balances);
        } finally {
          h.close();
        }
      }),
      { numRuns: 1_000 },
    );
  }, 300_000);

  type Command =
    | { kind: "produce"; deposits: Deposit[] }
    | { kind: "step"; group: GroupName }
    | { kind: "crash"; group: GroupName; at: keyof FaultPoints }
    | { kind: "transient"; group: GroupName };

  const command: fc.Arbitrary<Command> = fc.oneof(
    fc.record({ kind: fc.constant("produce" as const), deposits: fc.array(deposit, { minLength: 1, maxLength: 5 }) }),
    fc.record({ kind: fc.constant("step" as const), group: fc.constantFrom<GroupName>("balance", "threshold", "flagger") }),
    fc.record({
      kind: fc.constant("crash" as const),
      group: fc.constantFrom<GroupName>("balance", "threshold", "flagger"),
      at: fc.constantFrom<keyof FaultPoints>("beforeCommit", "afterCommit", "afterPublish"),
    }),
    fc.record({ kind: fc.constant("transient" as const), group: fc.constantFrom<GroupName>("balance", "threshold", "flagger") }),
  );

  async function run(h: Harness, c: Command, produced: Deposit[]) {
    if (c.kind === "produce") {
      await h.produce(c.deposits);
      produced.push(...c.deposits);
    } else if (c.kind === "transient") {
      await h.stepWithTransientFailure(c.group);
    } else {
      await h.step(c.group, c.kind === "crash" ? c.at : undefined);
    }
  }

  test("rebuild from the changelogs: a new instance with an empty store applies nothing twice", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(command, { minLength: 1, maxLength: 20 }), fc.array(deposit, { maxLength: 10 }), async (before, after) => {
        const h = new Harness();
        const produced: Deposit[] = [];
        try {
          await h.init();
          for (const c of before) {
            await run(h, c, produced);
          }
          await h.moveToNewInstance();
          // The new instance re-reads the input from its own (empty) progress: every
          // event the old one applied must be recognised by its restored id.
          await h.produce(after);
          produced.push(...after);
          await h.drain();
          const expected = model(produced);
          expect(h.balances()).toEqual(expected.balances);
          for (const wallet of WALLETS) {
            const row = h.store.row("flagger", wallet);
            expect(row ? flaggerTableCodec.decode(row.value).flagged : false).toBe(breached(expected.counted, wallet));
          }
        } finally {
          h.close();
        }
      }),
      { numRuns: 1_000 },
    );
  }, 300_000);

  test("model-based: with crashes between and inside steps, balances and flags match a Map model", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(command, { minLength: 1, maxLength: 30 }), async (commands) => {
        const h = new Harness();
        const produced: Deposit[] = [];
        try {
          await h.init();
          for (const c of commands) {
            await run(h, c, produced);
            // At every step, the committed balances are the model of exactly the records
            // below the committed progress of each partition: nothing lost, nothing twice.
            expect(h.balances()).toEqual(model(h.committedDeposits()).balances);
          }
          await h.drain();
          const expected = model(produced);
          expect(h.balances()).toEqual(expected.balances);

          // The views, fed by the changelogs (outboxes re-sent after crashes included), agree.
          const balanceView = new TableView(TOPICS.table("balance"), balanceTableCodec, h.log, h.store);
          const flagView = new TableView(TOPICS.table("flagger"), flaggerTableCodec, h.log, h.store);
          for (let i = 0; i < 4; i++) await Promise.all([balanceView.step(0), flagView.step(0)]);
          for (const wallet of WALLETS) {
            expect(balanceView.get(wallet)?.balanceMinor).toBe(expected.balances.get(wallet));
            expect(flagView.get(wallet)?.flagged ?? false).toBe(breached(expected.counted, wallet));
          }
        } finally {
          h.close();
        }
      }),
      { numRuns: 1_000 },
    );
  }, 300_000);

  test("a record in the wrong partition for its wallet is refused, not applied", async () => {
    const h = new Harness();
    try {
      await h.init();
      const right = partitionForKey("alice", PARTITIONS);
      const value = depositCodec.encode({ depositId: "misplaced", walletId: "alice", amountMinor: 7n, eventTimeMs: 0 });
      await h.log.produce([{ topic: TOPICS.deposits, key: "alice", value, partition: (right + 1) % PARTITIONS }]);
      await h.produce([{ wallet: "alice", id: "placed", amount: 5n, timeMs: 0 }]);
      await h.drain();
      expect(h.balances().get("alice")).toBe(5n);
      expect(h.store.rejectionsOf("balance").map((r) => r.code)).toEqual(["wrong_partition"]);
    } finally {
      h.close();
    }
  });

  test("an instance that comes back drops outbox rows the changelog has moved past", async () => {
    const log = new EmbeddedLog(":memory:", { pollMs: 1 });
    await log.ensureTopics(topicSpecs(PARTITIONS));
    const stores = { a: new StateStore(":memory:"), b: new StateStore(":memory:") };
    const instance = (store: StateStore, faults: FaultPoints = {}) => new Processor(groups.balance, log, store, limits, faults, true);
    const deposit = (id: string, amount: bigint) =>
      log.produce([{ topic: TOPICS.deposits, key: "alice", value: depositCodec.encode({ depositId: id, walletId: "alice", amountMinor: amount, eventTimeMs: 0 }) }]);
    const partition = partitionForKey("alice", PARTITIONS);
    const steps = async (p: Processor, n: number) => {
      for (let i = 0; i < n; i++) await p.step(0);
    };
    try {
      // A applies 100 and dies before publishing it.
      await deposit("d1", 100n);
      const a = instance(stores.a, { afterCommit: () => { throw new Crash(); } });
      await expect(steps(a, 3)).rejects.toBeInstanceOf(Crash);
      await a.stop();
      expect(stores.a.outbox("balance", [partition], 100)).toHaveLength(2); // the applied id and the row
      // B takes over with an empty store, applies 100 again and then 50, and publishes.
      const b = instance(stores.b);
      await deposit("d2", 50n);
      await steps(b, 4);
      await b.stop();
      // A comes back: its unpublished row (100) is older than the changelog's (150).
      const back = instance(stores.a);
      await steps(back, 3);
      await back.stop();
      expect(stores.a.outbox("balance", [partition], 100)).toEqual([]);
      const rows = log.read({ topic: TOPICS.table("balance"), partition, offset: 0 }, 1_000).filter((r) => r.key === "alice");
      expect(balanceTableCodec.decode(rows[rows.length - 1]!.value).balanceMinor).toBe(150n);
      expect(balanceTableCodec.decode(stores.a.row("balance", "alice")!.value).balanceMinor).toBe(150n);
    } finally {
      stores.a.close();
      stores.b.close();
      log.sqlite.close();
    }
  });
});

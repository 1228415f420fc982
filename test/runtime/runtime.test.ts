import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { balance, flagger } from "../../src/groups/index.js";
import { partitionForKey } from "../../src/log/murmur2.js";
import { decodeDeadLetter } from "../../src/runtime/dead-letter.js";
import type { FaultPoints } from "../../src/runtime/processor.js";
import { ChangelogView, LocalTable, type TableReader } from "../../src/runtime/view.js";
import { deposits } from "../../src/topics/deposits.js";
import { Harness, PARTITIONS, type Mode } from "./harness.js";

interface Deposit {
  wallet: string;
  id: string;
  amount: bigint;
  timeMs: number;
}

const WALLETS = ["alice", "bob", "carol", "dave"];
const GROUP_NAMES = ["balance", "threshold", "flagger"] as const;
type GroupName = (typeof GROUP_NAMES)[number];

const deposit = fc.record({
  wallet: fc.constantFrom(...WALLETS),
  // Few ids, so the same id comes again: sometimes with the same amount, sometimes not.
  id: fc.constantFrom("a", "b", "c", "d", "e", "f", "g", "h"),
  amount: fc.oneof(fc.constantFrom(1n, 500_000n, 600_000n, 1_000_000n), fc.bigInt({ min: 1n, max: 700_000n })),
  timeMs: fc.oneof(fc.constantFrom(0, 119_999, 120_000), fc.integer({ min: 0, max: 300_000 })),
});

async function produce(h: Harness, list: Deposit[]): Promise<void> {
  await h.log.produce(list.map((d) => ({
    topic: deposits.name,
    key: d.wallet,
    value: deposits.codec.encode({ depositId: d.id, walletId: d.wallet, amountMinor: d.amount, eventTimeMs: d.timeMs }),
  })));
}

function balances(h: Harness): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const w of WALLETS) {
    const row = h.store.row("balance", w);
    if (row) out.set(w, balance.table.codec.decode(row.value).balanceMinor);
  }
  return out;
}

/** The deposits the balance group has committed, per its stored progress. */
function committedDeposits(h: Harness): Deposit[] {
  return Array.from({ length: PARTITIONS }, (_, partition) => {
    const end = h.store.progress("balance", { topic: deposits.name, partition });
    return end === 0 ? [] : h.log.read({ topic: deposits.name, partition, offset: 0 }, end);
  }).flat().map((record) => {
    const d = deposits.codec.decode(record.value);
    return { wallet: d.walletId, id: d.depositId, amount: d.amountMinor, timeMs: d.eventTimeMs };
  });
}

/** The model: a Map from wallet to balance; the first amount seen for an id wins. */
function model(list: Deposit[]): { balances: Map<string, bigint>; counted: Deposit[] } {
  const seen = new Set<string>();
  const out = new Map<string, bigint>();
  const counted: Deposit[] = [];
  for (const d of list) {
    const key = `${d.wallet}/${d.id}`;
    if (seen.has(key)) continue;
    seen.add(key);
    counted.push(d);
    out.set(d.wallet, (out.get(d.wallet) ?? 0n) + d.amount);
  }
  return { balances: out, counted };
}

function breached(list: Deposit[], wallet: string): boolean {
  const mine = list.filter((d) => d.wallet === wallet);
  return mine.some((s) => mine.filter((d) => s.timeMs <= d.timeMs && d.timeMs < s.timeMs + 120_000).reduce((sum, d) => sum + d.amount, 0n) > 1_000_000n);
}

type Command =
  | { kind: "produce"; deposits: Deposit[] }
  | { kind: "step"; group: GroupName }
  | { kind: "crash"; group: GroupName; at: keyof FaultPoints }
  | { kind: "transient"; group: GroupName };

const command: fc.Arbitrary<Command> = fc.oneof(
  fc.record({ kind: fc.constant("produce" as const), deposits: fc.array(deposit, { minLength: 1, maxLength: 5 }) }),
  fc.record({ kind: fc.constant("step" as const), group: fc.constantFrom(...GROUP_NAMES) }),
  fc.record({
    kind: fc.constant("crash" as const),
    group: fc.constantFrom(...GROUP_NAMES),
    at: fc.constantFrom<keyof FaultPoints>("beforeCommit", "afterCommit", "afterPublish"),
  }),
  fc.record({ kind: fc.constant("transient" as const), group: fc.constantFrom(...GROUP_NAMES) }),
);

async function run(h: Harness, c: Command, produced: Deposit[]): Promise<void> {
  if (c.kind === "produce") {
    await produce(h, c.deposits);
    produced.push(...c.deposits);
  } else if (c.kind === "transient") {
    await h.stepWithTransientFailure(c.group);
  } else {
    await h.step(c.group, c.kind === "crash" ? c.at : undefined);
  }
}

/** The views the API would read in this mode: the tables in place, or replicas fed by the changelogs. */
async function views(h: Harness): Promise<{ balances: TableReader<{ balanceMinor: bigint }, unknown>; flags: TableReader<{ flagged: boolean }> }> {
  if (h.mode === "shared") return { balances: new LocalTable(balance, h.store), flags: new LocalTable(flagger, h.store) };
  const balances = new ChangelogView(balance, h.log, h.store);
  const flags = new ChangelogView(flagger, h.log, h.store);
  for (let i = 0; i < 4; i++) await Promise.all([balances.step(0), flags.step(0)]);
  return { balances, flags };
}

for (const mode of ["shared", "outbox"] as Mode[]) {
  describe(`runtime (${mode === "shared" ? "embedded: one transaction" : "Kafka: outbox and restore"})`, () => {
    test("replay idempotence: delivering a prefix of the events again changes nothing", async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(deposit, { minLength: 1, maxLength: 20 }), fc.nat(), async (list, cut) => {
          const h = new Harness(mode);
          try {
            await h.init();
            await produce(h, list);
            await h.drain();
            const once = balances(h);
            // Redelivery by a producer that re-sends: the same ids at new offsets, read by
            // freshly started processors.
            await produce(h, list.slice(0, cut % (list.length + 1)));
            for (const name of ["balance", "threshold"]) {
              const replayer = h.fresh(name, {});
              await h.processors.get(name)!.stop();
              h.processors.set(name, replayer);
            }
            await h.drain();
            expect(balances(h)).toEqual(once);
            expect(once).toEqual(model(list).balances);
          } finally {
            h.close();
          }
        }),
        { numRuns: 300 },
      );
    }, 300_000);

    test("model-based: with crashes between and inside steps, balances and flags match a Map model", async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(command, { minLength: 1, maxLength: 30 }), async (commands) => {
          const h = new Harness(mode);
          const produced: Deposit[] = [];
          try {
            await h.init();
            for (const c of commands) {
              await run(h, c, produced);
              // At every step, the committed balances are the model of exactly the records
              // below the committed progress of each partition: nothing lost, nothing twice.
              expect(balances(h)).toEqual(model(committedDeposits(h)).balances);
            }
            await h.drain();
            const expected = model(produced);
            expect(balances(h)).toEqual(expected.balances);
            // The views agree: on Kafka they are fed by the changelogs, outboxes re-sent
            // after crashes included.
            const v = await views(h);
            for (const wallet of WALLETS) {
              expect(v.balances.get(wallet)?.balanceMinor).toBe(expected.balances.get(wallet));
              expect(v.flags.get(wallet)?.flagged ?? false).toBe(breached(expected.counted, wallet));
            }
          } finally {
            h.close();
          }
        }),
        { numRuns: 500 },
      );
    }, 300_000);

    test("a record in the wrong partition for its wallet is dead-lettered, not applied, and the partition goes on", async () => {
      const h = new Harness(mode);
      try {
        await h.init();
        const right = partitionForKey("alice", PARTITIONS);
        const value = deposits.codec.encode({ depositId: "misplaced", walletId: "alice", amountMinor: 7n, eventTimeMs: 0 });
        await h.log.produce([{ topic: deposits.name, key: "alice", value, partition: (right + 1) % PARTITIONS }]);
        await produce(h, [{ wallet: "alice", id: "placed", amount: 5n, timeMs: 0 }]);
        await h.drain();
        expect(balances(h).get("alice")).toBe(5n);
        const letters = h.log.read({ topic: "deposits.dlq", partition: (right + 1) % PARTITIONS, offset: 0 }, 10).map((r) => decodeDeadLetter(r.value));
        expect(letters.map((l) => [l.group, l.reasonCode]).sort()).toEqual([["balance", "wrong_partition"], ["threshold", "wrong_partition"]]);
        expect(letters[0]!.value).toEqual(value);
      } finally {
        h.close();
      }
    });
  });
}

describe("runtime on Kafka's terms: instances with stores of their own", () => {
  test("rebuild from the changelogs: a new instance with an empty store applies nothing twice", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(command, { minLength: 1, maxLength: 20 }), fc.array(deposit, { maxLength: 10 }), async (before, after) => {
        const h = new Harness("outbox");
        const produced: Deposit[] = [];
        try {
          await h.init();
          for (const c of before) await run(h, c, produced);
          await h.moveToNewInstance();
          // The new instance resumes where the changelog says the old one was: every
          // event the old one applied must be recognised, by its restored id or its offset.
          await produce(h, after);
          produced.push(...after);
          await h.drain();
          const expected = model(produced);
          expect(balances(h)).toEqual(expected.balances);
          for (const wallet of WALLETS) {
            const row = h.store.row("flagger", wallet);
            expect(row ? flagger.table.codec.decode(row.value).flagged : false).toBe(breached(expected.counted, wallet));
          }
        } finally {
          h.close();
        }
      }),
      { numRuns: 500 },
    );
  }, 300_000);

  test("an instance that comes back drops outbox entries the changelog has moved past", async () => {
    const a = new Harness("outbox", [balance]);
    try {
      await a.init();
      const partition = partitionForKey("alice", PARTITIONS);
      // A applies 100 and dies before publishing it.
      await produce(a, [{ wallet: "alice", id: "d1", amount: 100n, timeMs: 0 }]);
      await a.step("balance", "afterCommit");
      const storeA = a.store;
      expect(storeA.outbox("balance", new Set([partition]), 100)).toHaveLength(1);
      // B takes over with an empty store, applies 100 again and then 50, and publishes.
      await a.restartOn(a.newStore());
      await produce(a, [{ wallet: "alice", id: "d2", amount: 50n, timeMs: 0 }]);
      await a.drain();
      const storeB = a.store;
      // A comes back: its unpublished row (100) is older than the changelog's (150).
      await a.restartOn(storeA);
      await a.drain();
      expect(storeA.outbox("balance", new Set([partition]), 100)).toEqual([]);
      expect(balance.table.codec.decode(storeA.row("balance", "alice")!.value).balanceMinor).toBe(150n);
      storeB.close();
    } finally {
      a.close();
    }
  });
});

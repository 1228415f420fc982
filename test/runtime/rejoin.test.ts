// An instance that comes back with its old state.db after another instance took its
// partition over and decided, in its own way, a batch this one had committed but never
// published (Kafka, outbox mode). Its state must become the published one: the same
// input read in another order across inputs (a flag before or after a withdrawal) is
// decided differently, and the ledger must never hold two entries with one number.
import { describe, expect, test } from "bun:test";
import type { WalletCommand } from "../../actors/wallet.js";
import { balance, operationRecordCodec } from "../../src/groups/balance.js";
import { Processor } from "../../src/runtime/processor.js";
import { ChangelogView } from "../../src/runtime/view.js";
import { commands } from "../../src/topics/commands.js";
import { flags } from "../../src/topics/flags.js";
import { ledger } from "../../src/topics/ledger.js";
import { config, Crash, Harness, limits } from "./harness.js";

const at = { walletId: "alice", eventTimeMs: 1, description: "", reference: "" };
const cmd = (c: WalletCommand) => ({ topic: commands.name, key: c.walletId, value: commands.codec.encode(c) });
const flag = () => ({ topic: flags.name, key: "alice", value: flags.codec.encode({ eventId: "f1", walletId: "alice", flagged: true, reason: "manual", eventTimeMs: 0 }) });
/** A record on another topic, to move the embedded log's poll rotation (which input is read first). */
const other = () => ({ topic: ledger.name, key: "zed", value: new Uint8Array([1]) });

function ledgerOf(h: Harness, wallet: string) {
  return [0, 1, 2].flatMap((p) => h.log.read({ topic: ledger.name, partition: p, offset: 0 }, 1000)).filter((r) => r.key === wallet).map((r) => ledger.codec.decode(r.value));
}

async function settle(view: ChangelogView<unknown, unknown>): Promise<void> {
  for (let idle = 0; idle < 3; ) idle = (await view.step(0)) === 0 ? idle + 1 : 0;
}

describe("an instance that comes back with the state of a batch it never published", () => {
  // Each shift makes instance A read the inputs in another order than instance B.
  for (const shift of [0, 1, 2, 3, 4, 5, 6]) {
    test(`adopts the published decisions (poll order shifted by ${shift})`, async () => {
      const h = new Harness("outbox", [balance]);
      try {
        await h.init();
        await h.log.produce([cmd({ ...at, operationId: "d1", kind: "deposit", amountMinor: 100n })]);
        await h.drain();
        await h.processors.get("balance")!.stop();
        // A commits one batch (a flag and two withdrawals), then dies before publishing it.
        let armed = false;
        const a = h.fresh("balance", { afterCommit: () => { if (armed) throw new Crash(); } });
        await a.step(0);
        for (let i = 0; i < shift; i++) {
          await h.log.produce([other()]);
          await a.step(0);
        }
        armed = true;
        await h.log.produce([cmd({ ...at, operationId: "w1", kind: "withdrawal", amountMinor: 50n }), cmd({ ...at, operationId: "x1", kind: "withdrawal", amountMinor: 10n }), flag()]);
        try {
          await a.step(0);
          await a.step(0);
        } catch (error) {
          if (!(error instanceof Crash)) throw error;
        }
        await a.stop();
        const storeA = h.store;
        expect(storeA.appliedEvent("balance", "alice", "w1")).toBeDefined();
        // B takes the partition with an empty store and decides the same input, in small batches.
        await h.restartOn(h.newStore());
        const storeB = h.store;
        await h.processors.get("balance")!.stop();
        const b = new Processor(balance, balance.actor(config), h.log, storeB, h.committer, { ...limits, batchRecordsMax: 2 }, {});
        h.processors.set("balance", b);
        for (let i = 0; i < 5 && storeB.progress("balance", { topic: commands.name, partition: 0 }) < 3; i++) await b.step(0);
        await b.stop();
        // A comes back with its old store, and goes on.
        await h.restartOn(storeA);
        await h.drain();
        await h.log.produce([cmd({ ...at, operationId: "d2", kind: "deposit", amountMinor: 5n })]);
        await h.drain();

        const view = new ChangelogView(balance, h.log, h.newStore());
        await settle(view);
        for (const id of ["d1", "w1", "x1", "d2"]) {
          const stored = storeA.appliedEvent("balance", "alice", id)!;
          expect({ id, outcome: stored.outcome, record: operationRecordCodec.decode(new Uint8Array(stored.detail!)) }).toEqual({
            id, outcome: view.applied("alice", id)!.outcome, record: view.applied("alice", id)!.record!,
          });
        }
        const row = balance.table.codec.decode(storeA.row("balance", "alice")!.value);
        expect(row).toEqual(view.get("alice")!);
        // The published ledger: one entry per number, each balance_after the sum so far.
        const entries = new Map<number, string>();
        for (const e of ledgerOf(h, "alice")) {
          const seen = entries.get(e.entryId);
          const text = `${e.operationId}:${e.amountMinor}:${e.balanceAfterMinor}`;
          expect(seen === undefined || seen === text).toBe(true);
          entries.set(e.entryId, text);
        }
        const sorted = [...entries].sort(([x], [y]) => x - y);
        expect(sorted.map(([id]) => id)).toEqual(sorted.map((_, i) => i + 1));
        let sum = 0n;
        for (const [, text] of sorted) {
          const [, amount, after] = text.split(":");
          sum += BigInt(amount!);
          expect(BigInt(after!)).toBe(sum);
        }
        expect(row.balanceMinor).toBe(sum);
        storeB.close();
      } finally {
        h.close();
      }
    });
  }

  test("with one input: keeps the times the published decisions were recorded at", async () => {
    const h = new Harness("outbox", [balance]);
    try {
      await h.init();
      await h.log.produce([cmd({ ...at, operationId: "d1", kind: "deposit", amountMinor: 100n })]);
      await h.step("balance", "afterCommit");
      const storeA = h.store;
      await Bun.sleep(5);
      await h.restartOn(h.newStore());
      const storeB = h.store;
      await h.drain();
      await h.restartOn(storeA);
      await h.drain();
      const record = operationRecordCodec.decode(new Uint8Array(storeA.appliedEvent("balance", "alice", "d1")!.detail!));
      const published = ledgerOf(h, "alice");
      expect(new Set(published.map((e) => `${e.entryId}:${e.recordedMs}`)).size).toBe(1);
      expect(record.decidedMs).toBe(published[0]!.recordedMs);
      expect(balance.table.codec.decode(storeA.row("balance", "alice")!.value).lastRecordedMs).toBe(published[0]!.recordedMs);
      storeB.close();
    } finally {
      h.close();
    }
  });
});

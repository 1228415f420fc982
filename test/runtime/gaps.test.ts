// A subscription that cannot go back (a Kafka consumer) and starts past the stored
// progress, as after a partition rebuilt from another instance's changelog at an older
// progress: the processor reads the records in between again from the log, so none is
// skipped.
import { expect, test } from "bun:test";
import { balance } from "../../src/groups/balance.js";
import { EmbeddedLog } from "../../src/log/embedded.js";
import { LogUnavailableError } from "../../src/runtime/errors.js";
import type { Log, SubscribeOptions, Subscription } from "../../src/log/log.js";
import { SharedCommitter } from "../../src/runtime/commit.js";
import { topicSpecs } from "../../src/runtime/group.js";
import { inOffsetOrder, Processor } from "../../src/runtime/processor.js";
import { StateStore } from "../../src/store/state-store.js";
import { commands } from "../../src/topics/commands.js";
import { testConfig } from "../support.js";
import { limits } from "./harness.js";

/** The log, with the members `replace` gives (undefined: the log's own). */
function withMembers(log: EmbeddedLog, replace: (prop: string | symbol, target: EmbeddedLog) => unknown): Log {
  return new Proxy(log, {
    get(target, prop) {
      const replaced = replace(prop, target);
      if (replaced !== undefined) return replaced;
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  }) as unknown as Log;
}

/** Deposit i to wallet w: 10^i cents, so the balance shows which were applied. */
const deposit = (i: number) => ({ topic: commands.name, key: "w", value: commands.codec.encode({ walletId: "w", operationId: `d${i}`, eventTimeMs: 0, description: "", reference: "", kind: "deposit", amountMinor: BigInt(10 ** i) }) });

/** A subscription that delivers nothing below `startAt` and ignores seeks backwards. */
function startingAt(subscription: Subscription, startAt: number): Subscription {
  let delivered = startAt;
  return {
    async poll(maxRecords, maxWaitMs) {
      const result = await subscription.poll(maxRecords, maxWaitMs);
      const records = result.records.filter((r) => r.offset >= startAt);
      for (const r of records) delivered = Math.max(delivered, r.offset + 1);
      return { ...result, records };
    },
    seek(position) {
      if (position.offset >= delivered) subscription.seek(position);
    },
    commit: (positions) => subscription.commit(positions),
    close: () => subscription.close(),
  };
}

for (const replayFailsFirst of [false, true]) test(`records between the progress and where the subscription resumes are read again, in order, and each decided once${replayFailsFirst ? " (the log away at the first replay)" : ""}`, async () => {
  const config = testConfig(":memory:", { PARTITIONS: "1" });
  const log = new EmbeddedLog(":memory:", { pollMs: 1 });
  const store = new StateStore(log.sqlite);
  let failReplay = replayFailsFirst;
  const gappy = withMembers(log, (prop, target) => {
    if (prop === "subscribe") return (options: SubscribeOptions) => startingAt(target.subscribe(options), 3);
    if (prop === "replay" && failReplay) {
      failReplay = false;
      // biome-ignore lint: an async generator that fails as the log being away would.
      return async function* () { throw new LogUnavailableError("replay failed (injected)"); };
    }
    return undefined;
  });
  const processor = new Processor(balance, balance.actor(config), gappy, store, new SharedCommitter(log, store), { ...limits, batchRecordsMax: 100 });
  try {
    await log.ensureTopics(topicSpecs([balance], 1));
    await log.produce([0, 1, 2, 3, 4].map(deposit));
    // A failed step is retried, as the processor's loop does.
    for (let i = 0; i < 6; i++) await processor.step(0).catch((error) => { if (!(error instanceof LogUnavailableError)) throw error; });
    const row = balance.table.codec.decode(store.row("balance", "w")!.value);
    // Every deposit once, in order: the entries count 1, 11, 111, ...
    expect({ balance: row.balanceMinor, entries: row.entryCount, last: row.lastDepositId }).toEqual({ balance: 11111n, entries: 5, last: "d4" });
    expect(store.entries("balance", "w", Number.MAX_SAFE_INTEGER, 10).map((e) => e.eventId)).toEqual(["d4", "d3", "d2", "d1", "d0"]);
  } finally {
    await processor.stop();
    await log.close();
  }
});

// Found by `bun run torture` on Kafka: after a rejoin the consumer re-fetched from the
// committed offset, and a record of a fetch already in flight came first (19, then
// 4..19). Applied in arrival order, 4..18 were dropped as redeliveries.
test("records a poll delivers out of offset order are applied in order, each once: none is dropped", async () => {
  const config = testConfig(":memory:", { PARTITIONS: "1" });
  const log = new EmbeddedLog(":memory:", { pollMs: 1 });
  const store = new StateStore(log.sqlite);
  const reordering = withMembers(log, (prop, target) => {
    if (prop !== "subscribe") return undefined;
    return (options: SubscribeOptions) => {
      const inner = target.subscribe(options);
      return {
        poll: async (maxRecords: number, maxWaitMs: number) => {
          const result = await inner.poll(maxRecords, maxWaitMs);
          // The last record first, then all of them again.
          const last = result.records[result.records.length - 1];
          return { ...result, records: last ? [last, ...result.records] : result.records };
        },
        seek: (position: Parameters<Subscription["seek"]>[0]) => inner.seek(position),
        commit: (positions: Parameters<Subscription["commit"]>[0]) => inner.commit(positions),
        close: () => inner.close(),
      };
    };
  });
  const processor = new Processor(balance, balance.actor(config), reordering, store, new SharedCommitter(log, store), { ...limits, batchRecordsMax: 100 });
  try {
    await log.ensureTopics(topicSpecs([balance], 1));
    await log.produce([0, 1, 2, 3, 4].map(deposit));
    for (let i = 0; i < 4; i++) await processor.step(0);
    const row = balance.table.codec.decode(store.row("balance", "w")!.value);
    expect(row.balanceMinor).toBe(11111n);
    expect(row.depositCount).toBe(5);
  } finally {
    await processor.stop();
    await log.close();
  }
});

test("inOffsetOrder sorts each partition's records by offset, once each, in the partitions' slots", () => {
  const r = (partition: number, offset: number) => ({ topic: "t", partition, offset, key: "k", value: new Uint8Array(), timestampMs: 0, headers: {} });
  const ordered = inOffsetOrder([r(0, 19), r(1, 7), r(0, 4), r(0, 5), r(1, 6), r(0, 19)]);
  expect(ordered.map((x) => `${x.partition}:${x.offset}`)).toEqual(["0:4", "1:6", "0:5", "0:19", "1:7"]);
});

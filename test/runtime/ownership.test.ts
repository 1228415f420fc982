// What a reviewer found with partitions changing hands on Kafka's terms (an outbox per
// instance, restore from the changelog), each kept as a test of the fix.
import { describe, expect, test } from "bun:test";
import type { Actor } from "../../actors/types.js";
import { DeadLetterSchema } from "../../src/gen/depositaja/v1/runtime_pb.js";
import { balance, flagger, threshold } from "../../src/groups/index.js";
import { EmbeddedLog } from "../../src/log/embedded.js";
import type { ProduceRecord } from "../../src/log/log.js";
import { partitionForKey } from "../../src/log/murmur2.js";
import { decodeChangelog, rowRecord } from "../../src/runtime/changelog.js";
import { OutboxCommitter } from "../../src/runtime/commit.js";
import { decodeDeadLetter } from "../../src/runtime/dead-letter.js";
import { LogUnavailableError } from "../../src/runtime/errors.js";
import { defineGroup, on, topicSpecs, type AnyGroup } from "../../src/runtime/group.js";
import { Processor } from "../../src/runtime/processor.js";
import { restorePartitions } from "../../src/runtime/restore.js";
import { defineTopic } from "../../src/runtime/topic.js";
import { StateStore } from "../../src/store/state-store.js";
import { openSqlite } from "../../src/store/sqlite.js";
import { deposits } from "../../src/topics/deposits.js";
import { config, Harness, limits, PARTITIONS, jsonCodec } from "./harness.js";

const newStore = () => new StateStore(openSqlite(":memory:", { durability: "normal", busyTimeoutMs: 0 }));
const deposit = (id: string, amountMinor: bigint, wallet = "alice") => ({
  topic: deposits.name,
  key: wallet,
  value: deposits.codec.encode({ depositId: id, walletId: wallet, amountMinor, eventTimeMs: 0 }),
});
const balanceOf = (store: StateStore) => balance.table.codec.decode(store.row("balance", "alice")!.value).balanceMinor;

/** The embedded log as a broker that can fail on demand, for one instance only. */
function flaky(log: EmbeddedLog, fail: (records: ProduceRecord[]) => "all" | "some" | "none") {
  return {
    endOffsets: (topic: string) => log.endOffsets(topic),
    async produce(records: ProduceRecord[]) {
      const how = fail(records);
      if (how === "none") return log.produce(records);
      if (how === "some") await log.produce(records.filter((r) => r.topic !== "flags"));
      throw new LogUnavailableError("broker unreachable (injected)");
    },
  };
}

function instance(group: AnyGroup, log: EmbeddedLog, store: StateStore, producer: ConstructorParameters<typeof OutboxCommitter>[0] = log) {
  return new Processor(group, group.actor(config), log, store, new OutboxCommitter(producer, store), limits);
}

describe("partitions changing hands", () => {
  test("a publish cut short after the changelog but before the flags does not lose the flag", async () => {
    const log = new EmbeddedLog(":memory:", { pollMs: 1 });
    await log.ensureTopics(topicSpecs([threshold, flagger], PARTITIONS));
    let first = true;
    const storeA = newStore();
    // The first publish stores everything but the flags, and fails.
    const a = instance(threshold, log, storeA, flaky(log, () => (first ? ((first = false), "some") : "none")));
    await log.produce([deposit("big", 1_000_001n)]);
    await a.step(0);
    await a.step(0).catch(() => {});
    await a.stop(); // killed before it tries again; another instance takes over
    const b = instance(threshold, log, newStore());
    for (let i = 0; i < 4; i++) await b.step(0);
    await b.stop();
    const flags = (await log.endOffsets("flags")).reduce((x, y) => x + y, 0);
    expect(flags).toBeGreaterThan(0);
  });

  test("an instance cut off and then back does not write its stale rows after the new owner's", async () => {
    const log = new EmbeddedLog(":memory:", { pollMs: 1, sessionTimeoutMs: 40, heartbeatMs: 5 });
    await log.ensureTopics(topicSpecs([balance], PARTITIONS));
    let down = false;
    const storeA = newStore();
    const storeB = newStore();
    const a = instance(balance, log, storeA, flaky(log, () => (down ? "all" : "none")));
    const b = instance(balance, log, storeB);
    await log.produce([deposit("d1", 100n)]);
    await a.step(0);
    down = true; // cut off right after its commit
    await a.step(0).catch(() => {});
    await Bun.sleep(80); // its session expires; the other instance takes every partition
    await log.produce([deposit("d2", 50n)]);
    for (let i = 0; i < 4; i++) await b.step(0);
    expect(balanceOf(storeB)).toBe(150n);
    down = false; // back: it must not publish 100 after the owner's 150
    for (let i = 0; i < 3; i++) await a.step(0).catch(() => {});
    const p = partitionForKey("alice", PARTITIONS);
    const rows = log.read({ topic: balance.changelog, partition: p, offset: 0 }, 1_000).map((r) => decodeChangelog(r.key, r.value)).filter((e) => e.kind === "row");
    const last = rows[rows.length - 1]!;
    expect(last.kind === "row" && balance.table.codec.decode(last.value).balanceMinor).toBe(150n);
    // A compacted changelog (the last record of each key) restores to 150.
    const compacted = new EmbeddedLog(":memory:", { pollMs: 1 });
    await compacted.ensureTopics(topicSpecs([balance], PARTITIONS));
    const latest = new Map(log.read({ topic: balance.changelog, partition: p, offset: 0 }, 1_000).map((r) => [r.key, r]));
    await compacted.produce([...latest.values()].sort((x, y) => x.offset - y.offset).map((r) => ({ topic: r.topic, key: r.key, value: r.value, partition: r.partition })));
    const storeC = newStore();
    await restorePartitions(balance, compacted, storeC, [p]);
    expect(balanceOf(storeC)).toBe(150n);
    await a.stop();
    await b.stop();
  });

  test("a group of two inputs whose instances read them in different orders loses nothing", async () => {
    interface Ev {
      id: string;
      wallet: string;
      n: number;
    }
    const json = jsonCodec;
    const topic = (name: string) => defineTopic<Ev>({ name, codec: json, schema: DeadLetterSchema, key: (e) => e.wallet, identity: (e) => ({ id: e.id, fingerprint: String(e.n) }), conflictCode: "reused" });
    const ta = topic("ta");
    const tb = topic("tb");
    const sum: Actor<{ total: number }, Ev, never> = { name: "sum", initial: () => ({ total: 0 }), handle: (s, e) => ({ state: { total: s.total + e.n }, emits: [] }) };
    const group = defineGroup<{ total: number }, Ev, never>({
      name: "sum", description: "", inputs: [on(ta, (e) => e), on(tb, (e) => e)], table: { codec: json, schema: DeadLetterSchema }, emits: [], view: false, actor: () => sum, emit: (o) => o,
    });
    const ev = (t: string, id: string, n: number) => ({ topic: t, key: "w", value: json.encode({ id, wallet: "w", n }) });
    const total = (s: StateStore) => (json.decode(s.row("sum", "w")!.value) as { total: number }).total;

    const log = new EmbeddedLog(":memory:", { pollMs: 1, sessionTimeoutMs: 40, heartbeatMs: 5 });
    await log.ensureTopics(topicSpecs([group], 1));
    let down = false;
    const storeA = newStore();
    await log.produce([ev("tb", "b0", 1), ev("tb", "b1", 10), ev("tb", "b2", 100)]);
    const a = new Processor(group, sum, log, storeA, new OutboxCommitter(flaky(log, () => (down ? "all" : "none")), storeA), limits);
    await a.step(0);
    down = true; // A applies tb[0..3) and is killed before its outbox is sent
    await a.step(0).catch(() => {});
    await Bun.sleep(80);
    await log.produce([ev("ta", "a0", 1000), ev("ta", "a1", 10000), ev("ta", "a2", 100000), ev("ta", "a3", 1000000)]);
    const storeB = newStore();
    const b = new Processor(group, sum, log, storeB, new OutboxCommitter(log, storeB), limits);
    await b.step(0);
    await b.step(0); // B applies ta[0..4), then is scaled down
    await b.stop();
    await Bun.sleep(80);
    const again = new Processor(group, sum, log, storeA, new OutboxCommitter(log, storeA), limits); // A restarts on its store
    for (let i = 0; i < 6; i++) await again.step(0);
    expect(total(storeA)).toBe(1_111_111);
    await again.stop();
  });

  test("an undecodable row in the changelog is skipped by restore, not a crash at every restart", async () => {
    const h = new Harness("outbox", [balance]);
    try {
      await h.init();
      await h.log.produce([{ topic: balance.changelog, partition: partitionForKey("alice", PARTITIONS), ...rowRecord("alice", new Uint8Array([0xff, 0xff, 0xff]), 1) }]);
      await h.log.produce([deposit("d1", 100n)]);
      await h.drain();
      expect(balanceOf(h.store)).toBe(100n);
    } finally {
      h.close();
    }
  });

  test("a breach by a deposit whose id is as long as the API allows flags the wallet", async () => {
    const h = new Harness("shared");
    try {
      await h.init();
      await h.log.produce([deposit("k".repeat(128), 1_000_001n)]);
      await h.drain();
      const p = partitionForKey("alice", PARTITIONS);
      expect(h.log.read({ topic: "flags.dlq", partition: p, offset: 0 }, 10).map((r) => decodeDeadLetter(r.value).reasonCode)).toEqual([]);
      expect(flagger.table.codec.decode(h.store.row("flagger", "alice")!.value).flagged).toBe(true);
    } finally {
      h.close();
    }
  });

  test("a batch whose output to one partition would pass the broker's limit is split", async () => {
    const h = new Harness("outbox", [threshold]);
    try {
      await h.init();
      // 150 wallets of one partition, each with a window of 1,000 deposits: rows of
      // about 9 KB, 1.3 MB for one batch that changes them all.
      const p = partitionForKey("alice", PARTITIONS);
      const wallets: string[] = [];
      for (let i = 0; wallets.length < 150; i++) if (partitionForKey(`heavy-${i}`, PARTITIONS) === p) wallets.push(`heavy-${i}`);
      // Interleaved, so that one batch touches every wallet.
      for (let round = 0; round < 1_000; round += 50) {
        await h.log.produce(Array.from({ length: 50 }, (_, i) => wallets.map((w) => ({
          topic: deposits.name, key: w, value: deposits.codec.encode({ depositId: `${w}-${round + i}`, walletId: w, amountMinor: 1n, eventTimeMs: round + i }),
        }))).flat());
      }
      let largest = 0;
      const produce = h.log.produce.bind(h.log);
      h.log.produce = async (records) => {
        largest = Math.max(largest, records.filter((r) => r.topic === threshold.changelog).reduce((sum, r) => sum + r.value.byteLength, 0));
        return produce(records);
      };
      const processor = new Processor(threshold, threshold.actor(config), h.log, h.store, h.committer, { ...limits, batchRecordsMax: 2_000 });
      const total = wallets.length * 1_000;
      for (let i = 0; i < 1_000 && h.store.progress("threshold", { topic: deposits.name, partition: p }) < total; i++) await processor.step(0);
      expect(h.store.progress("threshold", { topic: deposits.name, partition: p })).toBe(total);
      expect(largest).toBeGreaterThan(256 * 1024);
      expect(largest).toBeLessThanOrEqual(512 * 1024);
      await processor.stop();
    } finally {
      h.close();
    }
  }, 120_000);
});

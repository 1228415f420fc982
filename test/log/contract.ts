import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { CoPartitioningError, type Log, type LogRecord, type Subscription } from "../../src/log/log.js";
import { partitionForKey } from "../../src/log/murmur2.js";

export interface LogUnderTest {
  log: Log;
  /** A second client of the same log, as another process would have. */
  other(): Promise<Log>;
  cleanup(): Promise<void>;
}

const PARTITIONS = 4;
const bytes = (text: string) => new TextEncoder().encode(text);
const text = (value: Uint8Array) => new TextDecoder().decode(value);

async function pollUntil(sub: Subscription, count: number, timeoutMs = 15_000): Promise<LogRecord[]> {
  const found: LogRecord[] = [];
  const deadline = Date.now() + timeoutMs;
  while (found.length < count && Date.now() < deadline) found.push(...(await sub.poll(100, 200)).records);
  return found;
}

/**
 * The contract of the Log port, run against every implementation: what actors, the
 * runtime and the API rely on, and nothing of how a log does it.
 */
export function logContract(name: string, open: () => Promise<LogUnderTest>): void {
  describe(`Log contract: ${name}`, () => {
    let t: LogUnderTest;
    let n = 0;
    const topic = () => `contract-${Date.now()}-${n++}`;

    beforeAll(async () => {
      t = await open();
    }, 30_000);
    afterAll(async () => {
      await t.cleanup();
    }, 30_000);

    test("keyed records land in murmur2's partition, with dense offsets, in order", async () => {
      const name = topic();
      await t.log.ensureTopics([{ name, partitions: PARTITIONS }]);
      const keys = ["wallet-1", "wallet-2", "0x1a3565a67721b6ab46fB11d5CF33A72D871aEbA3", "wallet-1"];
      const positions = await t.log.produce(keys.map((key, i) => ({ topic: name, key, value: bytes(`v${i}`) })));
      positions.forEach((p, i) => expect(p.partition).toBe(partitionForKey(keys[i]!, PARTITIONS)));
      // Within each partition, offsets count up from where it ended, in produce order.
      for (let partition = 0; partition < PARTITIONS; partition++) {
        const offsets = positions.filter((p) => p.partition === partition).map((p) => p.offset);
        expect(offsets).toEqual(offsets.map((_, i) => offsets[0]! + i));
      }
      expect(positions[3]!.partition).toBe(positions[0]!.partition);
      expect(positions[3]!.offset).toBeGreaterThan(positions[0]!.offset);
      const ends = await t.log.endOffsets(name);
      expect(ends.reduce((a, b) => a + b, 0)).toBe(4);
    }, 30_000);

    test("an explicit partition wins over the key", async () => {
      const name = topic();
      await t.log.ensureTopics([{ name, partitions: PARTITIONS }]);
      const [p] = await t.log.produce([{ topic: name, key: "wallet-1", value: bytes("x"), partition: 3 }]);
      expect(p!.partition).toBe(3);
      await expect(t.log.produce([{ topic: name, key: "k", value: bytes("x"), partition: PARTITIONS }])).rejects.toThrow();
    }, 30_000);

    test("a subscription without a group reads every partition, with keys, values and headers", async () => {
      const name = topic();
      await t.log.ensureTopics([{ name, partitions: PARTITIONS }]);
      await t.log.produce(Array.from({ length: 20 }, (_, i) => ({ topic: name, key: `k${i}`, value: bytes(`v${i}`), headers: { version: String(i) } })));
      const sub = t.log.subscribe({ topics: [name] });
      const records = await pollUntil(sub, 20);
      await sub.close();
      expect(records.map((r) => text(r.value)).sort()).toEqual(Array.from({ length: 20 }, (_, i) => `v${i}`).sort());
      for (const r of records) expect(r.headers.version).toBe(r.key.slice(1));
    }, 30_000);

    test("records produced by another client are delivered", async () => {
      const name = topic();
      await t.log.ensureTopics([{ name, partitions: PARTITIONS }]);
      const sub = t.log.subscribe({ topics: [name] });
      await sub.poll(10, 50);
      const other = await t.other();
      await other.produce([{ topic: name, key: "from-elsewhere", value: bytes("hello") }]);
      const records = await pollUntil(sub, 1);
      await sub.close();
      await other.close();
      expect(records.map((r) => r.key)).toEqual(["from-elsewhere"]);
    }, 30_000);

    test("a group's committed offsets are where a new member starts", async () => {
      const name = topic();
      const group = `g-${name}`;
      await t.log.ensureTopics([{ name, partitions: 1 }]);
      await t.log.produce(Array.from({ length: 5 }, (_, i) => ({ topic: name, key: "k", value: bytes(`v${i}`) })));
      const first = t.log.subscribe({ topics: [name], group });
      const read = await pollUntil(first, 5);
      await first.commit([{ topic: name, partition: 0, offset: read[2]!.offset + 1 }]);
      await first.close();
      const second = t.log.subscribe({ topics: [name], group });
      const rest = await pollUntil(second, 2);
      await second.close();
      expect(rest.map((r) => text(r.value))).toEqual(["v3", "v4"]);
    }, 30_000);

    test("members of a group share the partitions, and a survivor takes them all", async () => {
      const name = topic();
      const group = `g-${name}`;
      await t.log.ensureTopics([{ name, partitions: PARTITIONS }]);
      const other = await t.other();
      const a = t.log.subscribe({ topics: [name], group });
      const b = other.subscribe({ topics: [name], group });
      const owned = { a: new Set<number>(), b: new Set<number>() };
      // As the runtime does: revoked first, then assigned (a partition in both was
      // taken away and given again).
      const track = async (sub: Subscription, set: Set<number>) => {
        const r = await sub.poll(10, 100);
        for (const tp of r.revoked) set.delete(tp.partition);
        for (const tp of r.assigned) set.add(tp.partition);
      };
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline && !(owned.a.size > 0 && owned.b.size > 0 && owned.a.size + owned.b.size === PARTITIONS)) {
        await Promise.all([track(a, owned.a), track(b, owned.b)]);
      }
      expect(owned.a.size + owned.b.size).toBe(PARTITIONS);
      expect([...owned.a].filter((p) => owned.b.has(p))).toEqual([]);
      await b.close();
      await other.close();
      while (Date.now() < deadline && owned.a.size < PARTITIONS) await track(a, owned.a);
      await a.close();
      expect(owned.a.size).toBe(PARTITIONS);
    }, 60_000);

    test("a topic that exists with another partition count is refused", async () => {
      const name = topic();
      await t.log.ensureTopics([{ name, partitions: PARTITIONS }]);
      await t.log.ensureTopics([{ name, partitions: PARTITIONS }]);
      expect(t.log.ensureTopics([{ name, partitions: PARTITIONS + 1 }])).rejects.toBeInstanceOf(CoPartitioningError);
      expect(await t.log.partitionCount(name)).toBe(PARTITIONS);
    }, 30_000);

    test("producing to a topic that does not exist fails", async () => {
      await expect(t.log.produce([{ topic: "no-such-topic", key: "k", value: bytes("x") }])).rejects.toThrow();
    }, 30_000);
  });
}

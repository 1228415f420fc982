import { DEFAULT_KAFKA_OPTIONS, KafkaLog } from "../../src/log/kafka.js";
import { kafkaOrSkip, uniquePrefix } from "../kafka-broker.js";
import { logContract } from "./contract.js";

const brokers = await kafkaOrSkip("Log contract: kafka");

if (brokers) {
  const prefix = uniquePrefix("contract");
  const open = () => new KafkaLog({ ...DEFAULT_KAFKA_OPTIONS, brokers: brokers.split(","), topicPrefix: prefix, sessionTimeoutMs: 6_000 });
  logContract("kafka", async () => {
    const log = open();
    return { log, other: async () => open(), cleanup: () => log.close() };
  });
}

if (brokers) {
  const { expect, test } = await import("bun:test");
  test("kafka: a subscription whose full buffer is emptied by a seek keeps reading", async () => {
    const log = new KafkaLog({ ...DEFAULT_KAFKA_OPTIONS, brokers: brokers.split(","), topicPrefix: uniquePrefix("pause") });
    try {
      await log.ensureTopics([{ name: "t", partitions: 1 }]);
      const value = new Uint8Array(8);
      // More than the subscription buffers (5,000), so its stream pauses.
      await log.produce(Array.from({ length: 6_000 }, (_, i) => ({ topic: "t", key: `k${i}`, value, partition: 0 })));
      const sub = log.subscribe({ topics: ["t"] });
      expect((await sub.poll(1, 10_000)).assigned).toEqual([{ topic: "t", partition: 0 }]);
      await Bun.sleep(2_000);
      // Skip everything buffered so far: the buffer empties without a poll taking it.
      sub.seek({ topic: "t", partition: 0, offset: 6_000 });
      await log.produce([{ topic: "t", key: "after", value, partition: 0 }]);
      const seen: number[] = [];
      const deadline = Date.now() + 15_000;
      while (!seen.includes(6_000) && Date.now() < deadline) seen.push(...(await sub.poll(1_000, 500)).records.map((r) => r.offset));
      expect(seen).toContain(6_000);
      expect(Math.min(...seen)).toBeGreaterThanOrEqual(6_000);
      await sub.close();
    } finally {
      await log.close();
    }
  }, 60_000);
}

if (brokers) {
  const { expect, test } = await import("bun:test");
  const { LogUnavailableError } = await import("../../src/runtime/errors.js");
  test("kafka: the produce queue is bounded (PRODUCE_QUEUE_RECORDS_MAX), yet an empty queue takes a produce of any size", async () => {
    const log = new KafkaLog({ ...DEFAULT_KAFKA_OPTIONS, brokers: brokers.split(","), topicPrefix: uniquePrefix("queue"), produceQueueRecordsMax: 100, lingerMs: 50 });
    try {
      await log.ensureTopics([{ name: "t", partitions: 1 }]);
      const value = new Uint8Array(8);
      const records = (n: number, tag: string) => Array.from({ length: n }, (_, i) => ({ topic: "t", key: `${tag}${i}`, value, partition: 0 }));
      // One processor batch larger than the bound, alone in the queue: it goes.
      expect(await log.produce(records(250, "big"))).toHaveLength(250);
      // Two produces while the first still lingers in the queue: 60 fit, 60 more do not.
      const first = log.produce(records(60, "a"));
      const second = log.produce(records(60, "b")).then(() => undefined, (error) => error);
      expect(await first).toHaveLength(60);
      const refused = await second;
      expect(refused).toBeInstanceOf(LogUnavailableError);
      expect(String(refused.message)).toContain("produce queue is full (100 records)");
      expect(await log.endOffsets("t")).toEqual([310]);
    } finally {
      await log.close();
    }
  }, 60_000);
}

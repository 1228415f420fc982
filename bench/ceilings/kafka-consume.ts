// Ceiling of processing on Kafka: the raw consume rate of @platformatic/kafka, with
// the consumer options src/log/kafka.ts uses, reading N records from a 12-partition
// topic and doing nothing with them. N Deposit-sized records are produced to a topic
// of this run's own first (untimed); the timed part starts with joining the group,
// as a processor's does.
//
// BROKERS=<host:port> bun bench/ceilings/kafka-consume.ts --records 100000 --wallets 10000
// prints one line: {"records":N,"seconds":S}

import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Admin, Consumer, ProduceAcks, Producer, type Message } from "@platformatic/kafka";
import { parseArgs } from "node:util";
import { DepositSchema } from "../../src/gen/depositaja/v1/events_pb.js";

const partitions = 12;
/** Records per produce request while preparing the topic. */
const produceBatchRecordsMax = 5_000;
/** The product's consumer limits (DEFAULT_KAFKA_OPTIONS in src/log/kafka.ts). */
const consumerOptions = { maxBytes: 1024 * 1024, maxWaitTime: 200, sessionTimeout: 6_000, heartbeatInterval: 1_000, rebalanceTimeout: 15_000 };

const { values } = parseArgs({ options: { records: { type: "string" }, wallets: { type: "string" } } });
const records = Number(values.records);
const wallets = Number(values.wallets);
const brokers = process.env.BROKERS?.split(",").filter(Boolean) ?? [];
if (!(records > 0 && wallets > 0 && brokers.length > 0)) throw new Error("usage: BROKERS=host:port kafka-consume.ts --records N --wallets W");

const run = `bench-consume-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
const base = { clientId: "bench-consume", bootstrapBrokers: brokers };

async function produce(topic: string): Promise<void> {
  const producer = new Producer({ ...base, idempotent: true, acks: ProduceAcks.ALL });
  const eventTime = timestampFromMs(Date.now());
  for (let from = 0; from < records; from += produceBatchRecordsMax) {
    const messages = [];
    for (let i = from; i < Math.min(records, from + produceBatchRecordsMax); i++) {
      const walletId = `w${i % wallets}`;
      const value = toBinary(DepositSchema, create(DepositSchema, { depositId: `d${i}`, walletId, amountMinor: 123n, eventTime }));
      messages.push({ topic, partition: i % partitions, key: Buffer.from(walletId), value: Buffer.from(value) });
    }
    await producer.send({ messages });
  }
  await producer.close();
}

/** Seconds from the start of consuming until the last of the N records arrived. */
async function consume(topic: string): Promise<number> {
  const consumer = new Consumer({ ...base, groupId: `${run}-group`, groupProtocol: "classic", autocommit: false, ...consumerOptions });
  const started = performance.now();
  const stream = await consumer.consume({ topics: [topic], mode: "earliest", fallbackMode: "earliest", autocommit: false });
  let seen = 0;
  await new Promise<void>((resolve, reject) => {
    stream.on("error", reject);
    stream.on("data", (_message: Message) => {
      if (++seen === records) resolve();
    });
  });
  const seconds = (performance.now() - started) / 1000;
  await stream.close();
  await consumer.close(true);
  return seconds;
}

const admin = new Admin(base);
const topic = `${run}-deposits`;
await admin.createTopics({ topics: [topic], partitions, replicas: 1 });
try {
  await produce(topic);
  const seconds = await consume(topic);
  console.log(JSON.stringify({ records, seconds }));
} finally {
  await admin.deleteTopics({ topics: [topic] });
  await admin.close();
}

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

import type { Config } from "../config.js";
import { GROUPS } from "../groups/index.js";
import { topicSpecs } from "../runtime/group.js";
import { EmbeddedLog, type EmbeddedLogOptions } from "./embedded.js";
import { DEFAULT_KAFKA_OPTIONS, KafkaLog } from "./kafka.js";
import type { Log } from "./log.js";

/**
 * Who a connection to the log is for. It decides how the connection behaves:
 * - "api": appends are promises to clients (durable), and must never block the event
 *   loop that serves them;
 * - "processor": commits state that can be rebuilt from the log (not fsynced on their
 *   own), and may wait for the write lock;
 * - "cli": one-off appends, durable.
 */
export type LogRole = "api" | "processor" | "cli";

const EMBEDDED: Record<LogRole, Partial<EmbeddedLogOptions>> = {
  api: { durability: "full", nonBlockingAppends: true },
  processor: { durability: "normal" },
  cli: { durability: "full" },
};

/**
 * Opens the configured log and makes sure every topic of every group exists,
 * co-partitioned. BROKERS selects Kafka; unset means the embedded log under DATA_DIR.
 */
export async function openLog(config: Config, role: LogRole): Promise<Log> {
  const log: Log = config.brokers.length > 0
    ? new KafkaLog({
        ...DEFAULT_KAFKA_OPTIONS,
        clientId: `depositaja-${role}`,
        brokers: config.brokers,
        topicPrefix: config.topicPrefix,
        replicationFactor: config.replicationFactor,
        produceTimeoutMs: config.produceTimeoutMs,
        produceQueueRecordsMax: config.produceQueueRecordsMax,
      })
    : EmbeddedLog.open(config.dataDir, { pollMs: config.embeddedPollMs, ...EMBEDDED[role] });
  try {
    await log.ensureTopics(topicSpecs(GROUPS, config.partitions));
  } catch (error) {
    await log.close().catch(() => {});
    throw error;
  }
  return log;
}

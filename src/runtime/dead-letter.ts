import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { DeadLetterSchema, type DeadLetter } from "../gen/depositaja/v1/runtime_pb.js";
import type { LogRecord, ProduceRecord } from "../log/log.js";
import { decoding } from "./codec.js";
import type { DeadLetterReason } from "./errors.js";
import { deadLetterTopic } from "./topic.js";

/**
 * The record format of dead-letter topics `<topic>.dlq`, encoded and decoded here only.
 * A dead letter keeps the original bytes, key and headers, says why and where from,
 * and goes to the partition the original came from, so it is committed with the batch
 * that refused it and a replay writes the same one.
 */
export function deadLetterRecord(group: string, record: LogRecord, reason: DeadLetterReason): ProduceRecord {
  const value = create(DeadLetterSchema, {
    value: record.value,
    key: record.key,
    headers: record.headers,
    sourceTopic: record.topic,
    sourcePartition: record.partition,
    sourceOffset: BigInt(record.offset),
    sourceTime: timestampFromMs(record.timestampMs),
    group,
    reasonCode: reason.code,
    reason: reason.message,
  });
  return { topic: deadLetterTopic(record.topic), key: record.key, partition: record.partition, value: toBinary(DeadLetterSchema, value) };
}

export function decodeDeadLetter(bytes: Uint8Array): DeadLetter {
  return decoding(() => fromBinary(DeadLetterSchema, bytes));
}

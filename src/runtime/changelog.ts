import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { ChangelogRecordSchema } from "../gen/depositaja/v1/runtime_pb.js";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { ProduceRecord } from "../log/log.js";
import { decoding, DecodeError, toMs } from "./codec.js";

/**
 * The record format of a group's changelog `<group>-table`, encoded and decoded here
 * and nowhere else: the processor writes it, views and restore read it, `inspect`
 * prints it. See ChangelogRecord in proto/depositaja/v1/runtime.proto.
 */

/** How far a group has applied its inputs in one partition: next offset per input topic. */
export type Through = ReadonlyMap<string, number>;

/** An event a group applied to one wallet. */
export interface AppliedEvent {
  walletId: string;
  eventId: string;
  fingerprint: string;
  /** "applied", "skipped" (its id bound, not read by this group), or the code of the business rule that refused it. */
  outcome: string;
  /** What the group recorded of the decision (see Records); empty if nothing. */
  detail: Uint8Array;
}

export type ChangelogEntry =
  | { kind: "row"; walletId: string; value: Uint8Array; version: number }
  | { kind: "batch"; events: AppliedEvent[]; timers: TimerChange[]; through: Through; version: number; output: ProduceRecord[]; outputDeliveredBefore: number };

/** A timer a batch set (dueMs) or cleared (null), in the order it did. */
export interface TimerChange {
  walletId: string;
  timerId: string;
  dueMs: number | null;
}

/** A changelog record before it is written: its key and value. */
export interface ChangelogWrite {
  key: string;
  value: Uint8Array;
}

/** A value's version: the sum of the input offsets, which only grows within a partition. */
export function versionOf(through: Through): number {
  let sum = 0;
  for (const offset of through.values()) sum += offset;
  return sum;
}

const BATCH_KEY_PREFIX = "\u0000batch:";
const vector = (through: Through) => [...through].sort(([a], [b]) => (a < b ? -1 : 1)).map(([t, o]) => `${t}@${o}`).join(",");

/** The record of a wallet's new table value. */
export function rowRecord(walletId: string, value: Uint8Array, version: number): ChangelogWrite {
  return { key: walletId, value: toBinary(ChangelogRecordSchema, create(ChangelogRecordSchema, { change: { case: "row", value }, version: BigInt(version) })) };
}

/** The record that closes a batch in one partition: the ids it applied, and its progress. */
export function batchRecord(
  from: Through,
  to: Through,
  events: AppliedEvent[],
  timers: readonly TimerChange[] = [],
  /** Kafka: the batch's output from this partition, and where delivered output ended then. */
  output?: { records: readonly ProduceRecord[]; deliveredBefore: number },
): ChangelogWrite {
  const timerChanges = timers.map((t) => ({ walletId: t.walletId, timerId: t.timerId, dueTime: t.dueMs === null ? undefined : timestampFromMs(t.dueMs) }));
  const outputRecords = (output?.records ?? []).map((r) => ({ topic: r.topic, key: r.key, partition: r.partition ?? -1, value: r.value, headers: r.headers ?? {} }));
  const value = create(ChangelogRecordSchema, {
    change: { case: "batch", value: { events, timers: timerChanges, output: outputRecords, outputDeliveredBefore: BigInt(output?.deliveredBefore ?? 0) } },
    through: Object.fromEntries([...to].map(([topic, offset]) => [topic, BigInt(offset)])),
    version: BigInt(versionOf(to)),
  });
  return { key: `${BATCH_KEY_PREFIX}${vector(from)}/${vector(to)}`, value: toBinary(ChangelogRecordSchema, value) };
}

/** Decodes a changelog record; throws DecodeError for one that is not. */
export function decodeChangelog(key: string, bytes: Uint8Array): ChangelogEntry {
  return decoding(() => {
    const m = fromBinary(ChangelogRecordSchema, bytes);
    const version = Number(m.version);
    if (m.change.case === "row") return { kind: "row", walletId: key, value: m.change.value, version };
    if (m.change.case === "batch") {
      const through = new Map(Object.entries(m.through).map(([topic, offset]) => [topic, Number(offset)]));
      const events = m.change.value.events.map(({ walletId, eventId, fingerprint, outcome, detail }) => ({ walletId, eventId, fingerprint, outcome, detail }));
      const timers = m.change.value.timers.map((t) => ({ walletId: t.walletId, timerId: t.timerId, dueMs: t.dueTime === undefined ? null : toMs(t.dueTime, "due_time") }));
      const output = m.change.value.output.map((r): ProduceRecord => ({ topic: r.topic, key: r.key, value: r.value, headers: r.headers, ...(r.partition >= 0 ? { partition: r.partition } : {}) }));
      return { kind: "batch", events, timers, through, version, output, outputDeliveredBefore: Number(m.change.value.outputDeliveredBefore) };
    }
    throw new DecodeError("changelog_record_is_empty", "a changelog record must hold a row or a batch");
  });
}

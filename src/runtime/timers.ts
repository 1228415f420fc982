import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { FiredTimer } from "../../actors/types.js";
import { TimerFiredSchema } from "../gen/depositaja/v1/runtime_pb.js";
import { checkId, decoding, DERIVED_EVENT_ID_LENGTH_MAX, toMs, WALLET_ID_LENGTH_MAX } from "./codec.js";
import { defineTopic, type Topic } from "./topic.js";

/**
 * Timers (Kafka Streams' punctuators, made exactly-once). An actor's decision may set
 * or clear timers of its wallet. The runtime keeps the pending ones in an index in the
 * state store, written in the batch's transaction and carried by the batch's changelog
 * record, so a crash loses none and a restore on another instance rebuilds them.
 *
 * The processor holding a partition scans the index for due timers and produces each
 * as a record on the group's own topic `<group>-timers`, which the group reads like
 * any input: the firing is decided by the actor, committed with its state and what it
 * emits, and deduplicated by its id (timer id and due time). The index entry is
 * cleared in the same commit. A firing produced twice (a crash, a move, a scan before
 * the first came back) is decided once; a firing of a timer that is no longer pending
 * (fired already, cleared, or set to another time) is skipped.
 *
 * A timer fires at or after its due time, never before by the processor's clock: at
 * the next scan (every `timerScanIntervalMs`) plus one round trip through the log,
 * later if the partition is unassigned or its processor is behind.
 */

/** The topic a group's due timers travel on: `<group>-timers`. */
export const timerTopicName = (group: string) => `${group}-timers`;

/** The scope of timer firings among a group's event ids. */
export const TIMER_SCOPE = "timer";

export function timerTopic(group: string): Topic<FiredTimer> {
  return defineTopic<FiredTimer>({
    name: timerTopicName(group),
    schema: TimerFiredSchema,
    codec: {
      encode: (t) => toBinary(TimerFiredSchema, create(TimerFiredSchema, { walletId: t.walletId, timerId: t.timerId, dueTime: timestampFromMs(t.dueMs) })),
      decode: (bytes) =>
        decoding(() => {
          const m = fromBinary(TimerFiredSchema, bytes);
          return {
            walletId: checkId(m.walletId, "wallet_id", WALLET_ID_LENGTH_MAX),
            timerId: checkId(m.timerId, "timer_id", DERIVED_EVENT_ID_LENGTH_MAX),
            dueMs: toMs(m.dueTime, "due_time"),
          };
        }),
    },
    key: (t) => t.walletId,
    identity: (t) => ({ id: `${t.timerId}@${t.dueMs}`, fingerprint: `due_ms=${t.dueMs}` }),
    conflictCode: "timer_conflict",
  });
}

/** A pending timer as the index keeps it. */
export interface TimerRow {
  key: string;
  timerId: string;
  partition: number;
  /** null: cleared. */
  dueMs: number | null;
}

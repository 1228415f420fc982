import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { thresholdActor, type ThresholdState } from "../../actors/threshold.js";
import type { DepositEvent, FlagChange } from "../../actors/types.js";
import { ThresholdTableValueSchema } from "../gen/depositaja/v1/tables_pb.js";
import { decoding, DecodeError } from "../runtime/codec.js";
import { defineGroup, on, to } from "../runtime/group.js";
import { commands } from "../topics/commands.js";
import { deposits } from "../topics/deposits.js";
import { flags } from "../topics/flags.js";
import { optionalMs, optionalTimestamp } from "./time.js";

/** The detector: flags a wallet whose deposits in one sliding window pass the threshold. */
export const threshold = defineGroup<ThresholdState, DepositEvent, FlagChange>({
  name: "threshold",
  description: "the detector: flags wallets with more than the threshold deposited within one window",
  aliases: ["detector"],
  // Deposits from trusted producers, and those the API sends as commands; the other
  // commands are skipped.
  inputs: [
    on(deposits, (d) => d),
    on(commands, (c) => (c.kind === "deposit" ? { depositId: c.operationId, walletId: c.walletId, amountMinor: c.amountMinor, eventTimeMs: c.eventTimeMs } : undefined)),
  ],
  table: {
    schema: ThresholdTableValueSchema,
    codec: {
      encode: (s) =>
        toBinary(ThresholdTableValueSchema, create(ThresholdTableValueSchema, {
          entryTimesMs: s.entries.map((e) => BigInt(e.timeMs)),
          entryAmountsMinor: s.entries.map((e) => e.amountMinor),
          newestEventTime: optionalTimestamp(s.newestTimeMs),
          firstBreachTime: optionalTimestamp(s.firstBreachTimeMs),
          evictedCount: BigInt(s.evictedCount),
        })),
      decode: (bytes) =>
        decoding(() => {
          const m = fromBinary(ThresholdTableValueSchema, bytes);
          if (m.entryTimesMs.length !== m.entryAmountsMinor.length) throw new DecodeError("entries_are_uneven", "entry_times_ms and entry_amounts_minor must be as long");
          return {
            entries: m.entryTimesMs.map((t, i) => ({ timeMs: Number(t), amountMinor: m.entryAmountsMinor[i]! })),
            newestTimeMs: optionalMs(m.newestEventTime),
            firstBreachTimeMs: optionalMs(m.firstBreachTime),
            evictedCount: Number(m.evictedCount),
          };
        }),
    },
  },
  emits: [flags],
  view: false,
  actor: (config) => thresholdActor({ ...config.threshold, depositAmountMaxMinor: config.depositAmountMaxMinor }),
  emit: (flag) => to(flags, flag),
});

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { balanceActor, type BalanceState } from "../../actors/balance.js";
import type { DepositEvent } from "../../actors/types.js";
import { BalanceTableValueSchema } from "../gen/depositaja/v1/tables_pb.js";
import { decoding } from "../runtime/codec.js";
import { defineGroup, on } from "../runtime/group.js";
import { deposits } from "../topics/deposits.js";
import { optionalMs, optionalTimestamp } from "./time.js";

/** The collector: the balance of each wallet, and the deposits it counted or refused. */
export const balance = defineGroup<BalanceState, DepositEvent, never>({
  name: "balance",
  description: "the collector: sums each wallet's deposits into its balance",
  aliases: ["collector"],
  inputs: [on(deposits, (d) => d)],
  table: {
    schema: BalanceTableValueSchema,
    codec: {
      encode: (s) =>
        toBinary(BalanceTableValueSchema, create(BalanceTableValueSchema, {
          balanceMinor: s.balanceMinor,
          depositCount: BigInt(s.depositCount),
          rejectedCount: BigInt(s.rejectedCount),
          lastDepositId: s.lastDepositId,
          lastDepositTime: optionalTimestamp(s.lastDepositTimeMs),
          lastRejectionCode: s.lastRejectionCode,
        })),
      decode: (bytes) =>
        decoding(() => {
          const m = fromBinary(BalanceTableValueSchema, bytes);
          return {
            balanceMinor: m.balanceMinor,
            depositCount: Number(m.depositCount),
            rejectedCount: Number(m.rejectedCount),
            lastDepositId: m.lastDepositId,
            lastDepositTimeMs: optionalMs(m.lastDepositTime),
            lastRejectionCode: m.lastRejectionCode,
          };
        }),
    },
  },
  emits: [],
  view: true,
  actor: (config) => balanceActor({ depositAmountMaxMinor: config.depositAmountMaxMinor, balanceMaxMinor: config.balanceMaxMinor }),
  emit: (out) => out,
});

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { DepositEvent } from "../../actors/types.js";
import { DepositSchema } from "../gen/depositaja/v1/events_pb.js";
import { checkId, decoding, DecodeError, EVENT_ID_LENGTH_MAX, toMs, WALLET_ID_LENGTH_MAX } from "../runtime/codec.js";
import { REVERSAL_ID_PREFIX } from "./commands.js";
import { defineTopic } from "../runtime/topic.js";

/**
 * `deposits`: money into a wallet, keyed by wallet id. Written by the API, the
 * emit-deposit command and any trusted producer (see proto/depositaja/v1/events.proto).
 * The same deposit id for the same wallet is one deposit.
 */
export const deposits = defineTopic<DepositEvent>({
  name: "deposits",
  schema: DepositSchema,
  codec: {
    encode: (d) =>
      toBinary(DepositSchema, create(DepositSchema, {
        depositId: d.depositId,
        walletId: d.walletId,
        amountMinor: d.amountMinor,
        eventTime: timestampFromMs(d.eventTimeMs),
      })),
    decode: (bytes) =>
      decoding(() => {
        const m = fromBinary(DepositSchema, bytes);
        const depositId = checkId(m.depositId, "deposit_id", EVENT_ID_LENGTH_MAX);
        // Reversals' ids are derived from deposits': "reversal:<deposit_id>" (ledger.proto).
        if (depositId.startsWith(REVERSAL_ID_PREFIX)) throw new DecodeError("operation_id_reserved", `deposit ids starting with "${REVERSAL_ID_PREFIX}" are reserved for reversals`);
        return {
          depositId,
          walletId: checkId(m.walletId, "wallet_id", WALLET_ID_LENGTH_MAX),
          amountMinor: m.amountMinor,
          eventTimeMs: toMs(m.eventTime, "event_time"),
        };
      }),
  },
  key: (d) => d.walletId,
  identity: (d) => ({ id: d.depositId, fingerprint: `amount_minor=${d.amountMinor}` }),
  conflictCode: "deposit_id_reused_with_different_amount",
  eventTimeMs: (d) => d.eventTimeMs,
});

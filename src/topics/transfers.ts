import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { stepWallet, transferStepId, type TransferStep } from "../../actors/wallet.js";
import { CancelRequestedSchema, CreditAppliedSchema, CreditRefusedSchema, CreditRequestedSchema, TransferStepSchema } from "../gen/depositaja/v1/ledger_pb.js";
import { checkId, decoding, DecodeError, EVENT_ID_LENGTH_MAX, toMs, WALLET_ID_LENGTH_MAX } from "../runtime/codec.js";
import { defineTopic } from "../runtime/topic.js";
import { DESCRIPTION_LENGTH_MAX } from "./commands.js";

/** Why a destination refuses a credit: the reasons a CreditRefused may carry. */
export const CREDIT_REFUSAL_REASONS = ["destination_not_found", "balance_would_exceed_max", "transfer_expired"] as const;

function encodeStep(s: TransferStep) {
  switch (s.step) {
    case "credit_requested":
      return { case: "creditRequested" as const, value: create(CreditRequestedSchema) };
    case "credit_applied":
      return { case: "creditApplied" as const, value: create(CreditAppliedSchema, { entryId: BigInt(s.entryId) }) };
    case "credit_refused":
      return { case: "creditRefused" as const, value: create(CreditRefusedSchema, { reason: s.reason }) };
    case "cancel_requested":
      return { case: "cancelRequested" as const, value: create(CancelRequestedSchema) };
  }
}

/**
 * `transfers`: the steps of the transfer saga between wallets (TransferStep in
 * proto/depositaja/v1/ledger.proto), each keyed by the wallet that decides it. The
 * balance group emits them and reads them back; a step is decided once per wallet
 * under its step id, in the "transfer" scope so no client's operation id can clash.
 */
export const transfers = defineTopic<TransferStep>({
  name: "transfers",
  schema: TransferStepSchema,
  codec: {
    encode: (s) =>
      toBinary(TransferStepSchema, create(TransferStepSchema, {
        transferId: s.transferId,
        fromWalletId: s.fromWalletId,
        toWalletId: s.toWalletId,
        amountMinor: s.amountMinor,
        eventTime: timestampFromMs(s.eventTimeMs),
        expiresTime: timestampFromMs(s.expiresMs),
        description: s.description,
        step: encodeStep(s),
      })),
    decode: (bytes) =>
      decoding((): TransferStep => {
        const m = fromBinary(TransferStepSchema, bytes);
        const common = {
          transferId: checkId(m.transferId, "transfer_id", EVENT_ID_LENGTH_MAX),
          fromWalletId: checkId(m.fromWalletId, "from_wallet_id", WALLET_ID_LENGTH_MAX),
          toWalletId: checkId(m.toWalletId, "to_wallet_id", WALLET_ID_LENGTH_MAX),
          amountMinor: m.amountMinor,
          eventTimeMs: toMs(m.eventTime, "event_time"),
          expiresMs: toMs(m.expiresTime, "expires_time"),
          description: m.description,
          reason: "",
          entryId: 0,
        };
        if (m.amountMinor <= 0n) throw new DecodeError("amount_must_be_positive", "a transfer's amount_minor must be positive");
        if (m.description.length > DESCRIPTION_LENGTH_MAX) throw new DecodeError("description_too_long", `description may be at most ${DESCRIPTION_LENGTH_MAX} characters`);
        const s = m.step;
        switch (s.case) {
          case "creditRequested":
            return { ...common, step: "credit_requested" };
          case "creditApplied":
            return { ...common, step: "credit_applied", entryId: Number(s.value.entryId) };
          case "creditRefused":
            if (!(CREDIT_REFUSAL_REASONS as readonly string[]).includes(s.value.reason)) {
              throw new DecodeError("reason_is_unknown", `a refusal's reason must be one of ${CREDIT_REFUSAL_REASONS.join(", ")}`);
            }
            return { ...common, step: "credit_refused", reason: s.value.reason };
          case "cancelRequested":
            return { ...common, step: "cancel_requested" };
          default:
            throw new DecodeError("step_is_required", "a transfer step must be a credit request, credit applied, credit refused or cancel request");
        }
      }),
  },
  key: stepWallet,
  identity: (s) => ({
    id: transferStepId(s),
    fingerprint: `${s.step} amount_minor=${s.amountMinor} from=${s.fromWalletId} to=${s.toWalletId}${s.reason ? ` reason=${s.reason}` : ""}`,
  }),
  conflictCode: "transfer_step_conflict",
});

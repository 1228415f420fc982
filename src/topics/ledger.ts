import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { LedgerEntry, OperationKind } from "../../actors/wallet.js";
import { LedgerEntrySchema, OperationKind as OperationKindPb } from "../gen/depositaja/v1/ledger_pb.js";
import { checkId, decoding, DecodeError, DERIVED_EVENT_ID_LENGTH_MAX, toMs, WALLET_ID_LENGTH_MAX } from "../runtime/codec.js";
import { defineTopic } from "../runtime/topic.js";

const kindToPb: Record<OperationKind, OperationKindPb> = {
  deposit: OperationKindPb.DEPOSIT,
  withdrawal: OperationKindPb.WITHDRAWAL,
  credit_limit: OperationKindPb.CREDIT_LIMIT,
  reversal: OperationKindPb.REVERSAL,
  transfer: OperationKindPb.TRANSFER,
  transfer_out: OperationKindPb.TRANSFER_OUT,
  transfer_in: OperationKindPb.TRANSFER_IN,
  open: OperationKindPb.OPEN,
};

export const operationKindToPb = (kind: OperationKind) => kindToPb[kind];

export function operationKindFromPb(kind: OperationKindPb): OperationKind {
  for (const [name, value] of Object.entries(kindToPb)) if (value === kind) return name as OperationKind;
  throw new DecodeError("kind_is_unknown", `unknown operation kind ${kind}`);
}

/**
 * `ledger`: the decided entries of every wallet, keyed by wallet id (LedgerEntry in
 * proto/depositaja/v1/ledger.proto). Written by the balance group in the commit that
 * changes the balance; read by any service that wants the history (webhooks,
 * analytics). Entry ids are 1, 2, 3, ... per wallet.
 */
export const ledger = defineTopic<LedgerEntry>({
  name: "ledger",
  schema: LedgerEntrySchema,
  codec: {
    encode: (e) =>
      toBinary(LedgerEntrySchema, create(LedgerEntrySchema, {
        walletId: e.walletId,
        entryId: BigInt(e.entryId),
        operationId: e.operationId,
        kind: kindToPb[e.kind],
        amountMinor: e.amountMinor,
        balanceAfterMinor: e.balanceAfterMinor,
        eventTime: timestampFromMs(e.eventTimeMs),
        recordedTime: timestampFromMs(e.recordedMs),
        description: e.description,
        counterpartyWalletId: e.counterpartyWalletId,
      })),
    decode: (bytes) =>
      decoding(() => {
        const m = fromBinary(LedgerEntrySchema, bytes);
        return {
          walletId: checkId(m.walletId, "wallet_id", WALLET_ID_LENGTH_MAX),
          entryId: Number(m.entryId),
          operationId: checkId(m.operationId, "operation_id", DERIVED_EVENT_ID_LENGTH_MAX),
          kind: operationKindFromPb(m.kind),
          amountMinor: m.amountMinor,
          balanceAfterMinor: m.balanceAfterMinor,
          eventTimeMs: toMs(m.eventTime, "event_time"),
          recordedMs: toMs(m.recordedTime, "recorded_time"),
          description: m.description,
          counterpartyWalletId: m.counterpartyWalletId,
        };
      }),
  },
  key: (e) => e.walletId,
  identity: (e) => ({ id: String(e.entryId), fingerprint: `operation_id=${e.operationId}` }),
  conflictCode: "entry_id_reused",
});

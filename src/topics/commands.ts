import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { OPEN_OPERATION_ID, type WalletCommand } from "../../actors/wallet.js";
import { OpenWalletSchema, TransferCommandSchema, WalletCommandSchema } from "../gen/depositaja/v1/ledger_pb.js";
import { checkId, decoding, DecodeError, DERIVED_EVENT_ID_LENGTH_MAX, EVENT_ID_LENGTH_MAX, toMs, WALLET_ID_LENGTH_MAX } from "../runtime/codec.js";
import { defineTopic } from "../runtime/topic.js";

/** A description may hold this many characters (UTF-16 code units), at most. */
export const DESCRIPTION_LENGTH_MAX = 500;

/** The prefix of a reversal's operation id: "reversal:<id of the deposit it reverses>". */
export const REVERSAL_ID_PREFIX = "reversal:";
export const reversalId = (operationId: string) => `${REVERSAL_ID_PREFIX}${operationId}`;

/**
 * What must match for a repeat of an operation id to be the same operation: its kind
 * and amount (the wallet is the record key). A deposit's is the same as on `deposits`,
 * so a deposit sent on both topics with one id counts once.
 */
export function commandFingerprint(c: WalletCommand): string {
  switch (c.kind) {
    case "deposit":
      return `amount_minor=${c.amountMinor}`;
    case "withdrawal":
      return `withdrawal amount_minor=${c.amountMinor}`;
    case "credit_limit":
      return `credit_limit credit_limit_minor=${c.creditLimitMinor}`;
    case "reversal":
      return `reversal of=${c.reversalOf}`;
    case "transfer":
      return `transfer to=${c.toWalletId} amount_minor=${c.amountMinor}`;
    case "open":
      return `open user_id=${c.userId} initial_amount_minor=${c.initialAmountMinor}`;
  }
}

function encodeCommand(c: WalletCommand) {
  switch (c.kind) {
    case "deposit":
      return { case: "depositMinor" as const, value: c.amountMinor };
    case "withdrawal":
      return { case: "withdrawalMinor" as const, value: c.amountMinor };
    case "credit_limit":
      return { case: "creditLimitMinor" as const, value: c.creditLimitMinor };
    case "reversal":
      return { case: "reversalOf" as const, value: c.reversalOf };
    case "transfer":
      return { case: "transfer" as const, value: create(TransferCommandSchema, { toWalletId: c.toWalletId, amountMinor: c.amountMinor }) };
    case "open":
      return { case: "open" as const, value: create(OpenWalletSchema, { userId: c.userId, initialAmountMinor: c.initialAmountMinor }) };
  }
}

/**
 * `commands`: operations on one wallet, keyed by wallet id (WalletCommand in
 * proto/depositaja/v1/ledger.proto). The API's write routes emit them; the balance
 * group decides them.
 */
export const commands = defineTopic<WalletCommand>({
  name: "commands",
  schema: WalletCommandSchema,
  codec: {
    encode: (c) =>
      toBinary(WalletCommandSchema, create(WalletCommandSchema, {
        operationId: c.operationId,
        walletId: c.walletId,
        eventTime: timestampFromMs(c.eventTimeMs),
        description: c.description,
        reference: c.reference,
        command: encodeCommand(c),
      })),
    decode: (bytes) =>
      decoding(() => {
        const m = fromBinary(WalletCommandSchema, bytes);
        const derived = m.command.case === "reversalOf";
        const common = {
          operationId: checkId(m.operationId, "operation_id", derived ? DERIVED_EVENT_ID_LENGTH_MAX : EVENT_ID_LENGTH_MAX),
          walletId: checkId(m.walletId, "wallet_id", WALLET_ID_LENGTH_MAX),
          eventTimeMs: toMs(m.eventTime, "event_time"),
          description: m.description,
          reference: m.reference,
        };
        if (m.description.length > DESCRIPTION_LENGTH_MAX) throw new DecodeError("description_too_long", `description may be at most ${DESCRIPTION_LENGTH_MAX} characters`);
        if (m.reference !== "") checkId(m.reference, "reference", EVENT_ID_LENGTH_MAX);
        const c = m.command;
        // Derived ids are a reversal's only: a deposit named "reversal:x" would make x
        // impossible to reverse.
        if (c.case !== "reversalOf" && common.operationId.startsWith(REVERSAL_ID_PREFIX)) {
          throw new DecodeError("operation_id_reserved", `operation ids starting with "${REVERSAL_ID_PREFIX}" are reserved for reversals`);
        }
        // One opening per wallet, under one id; no other operation may take it.
        if ((c.case === "open") !== (common.operationId === OPEN_OPERATION_ID)) {
          throw new DecodeError("operation_id_reserved", `the operation id "${OPEN_OPERATION_ID}" is an opening's, and only an opening's`);
        }
        switch (c.case) {
          case "depositMinor":
            return { ...common, kind: "deposit", amountMinor: c.value };
          case "withdrawalMinor":
            return { ...common, kind: "withdrawal", amountMinor: c.value };
          case "creditLimitMinor":
            return { ...common, kind: "credit_limit", creditLimitMinor: c.value };
          case "reversalOf":
            checkId(c.value, "reversal_of", EVENT_ID_LENGTH_MAX);
            // Derived, so that reversing a deposit twice is one operation.
            if (common.operationId !== reversalId(c.value)) {
              throw new DecodeError("reversal_id_must_be_derived", `a reversal's operation_id must be "${reversalId(c.value)}"`);
            }
            return { ...common, kind: "reversal", reversalOf: c.value };
          case "transfer":
            return { ...common, kind: "transfer", toWalletId: checkId(c.value.toWalletId, "to_wallet_id", WALLET_ID_LENGTH_MAX), amountMinor: c.value.amountMinor };
          case "open":
            if (c.value.userId !== "") checkId(c.value.userId, "user_id", WALLET_ID_LENGTH_MAX);
            return { ...common, kind: "open", userId: c.value.userId, initialAmountMinor: c.value.initialAmountMinor };
          default:
            throw new DecodeError("command_is_required", "a command must be a deposit, withdrawal, credit limit, reversal, transfer or opening");
        }
      }),
  },
  key: (c) => c.walletId,
  identity: (c) => ({ id: c.operationId, fingerprint: commandFingerprint(c) }),
  conflictCode: "idempotency_key_reused",
  eventTimeMs: (c) => c.eventTimeMs,
});

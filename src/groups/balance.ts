import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { entryFromRecord, TRANSFER_SCOPE, walletActor, type OperationRecord, type WalletInput, type WalletOutput, type WalletState } from "../../actors/wallet.js";
import { OperationRecordSchema } from "../gen/depositaja/v1/ledger_pb.js";
import { BalanceTableValueSchema } from "../gen/depositaja/v1/tables_pb.js";
import { decoding, toMs } from "../runtime/codec.js";
import type { Codec } from "../runtime/codec.js";
import { defineGroup, on, to } from "../runtime/group.js";
import { commands } from "../topics/commands.js";
import { deposits } from "../topics/deposits.js";
import { flags } from "../topics/flags.js";
import { ledger, operationKindFromPb, operationKindToPb } from "../topics/ledger.js";
import { transfers } from "../topics/transfers.js";
import { userWallets } from "../topics/user-wallets.js";
import { optionalMs, optionalTimestamp } from "./time.js";

const tableCodec: Codec<WalletState> = {
  encode: (s) =>
    toBinary(BalanceTableValueSchema, create(BalanceTableValueSchema, {
      balanceMinor: s.balanceMinor,
      depositCount: BigInt(s.depositCount),
      rejectedCount: BigInt(s.rejectedCount),
      lastDepositId: s.lastDepositId,
      lastDepositTime: optionalTimestamp(s.lastDepositTimeMs),
      lastRejectionCode: s.lastRejectionCode,
      heldMinor: s.heldMinor,
      creditLimitMinor: s.creditLimitMinor,
      flagged: s.flagged,
      withdrawalCount: BigInt(s.withdrawalCount),
      reversalCount: BigInt(s.reversalCount),
      rejectedOperationCount: BigInt(s.rejectedOperationCount),
      entryCount: BigInt(s.entryCount),
      lastRecordedTime: optionalTimestamp(s.lastRecordedMs === 0 ? null : s.lastRecordedMs),
      transferOutCount: BigInt(s.transferOutCount),
      transferInCount: BigInt(s.transferInCount),
      pendingTransferCount: BigInt(s.pendingTransferCount),
      opened: s.opened,
      userId: s.userId,
      initialAmountMinor: s.initialAmountMinor,
      openedTime: optionalTimestamp(s.openedMs),
    })),
  decode: (bytes) =>
    decoding(() => {
      const m = fromBinary(BalanceTableValueSchema, bytes);
      return {
        balanceMinor: m.balanceMinor,
        heldMinor: m.heldMinor,
        creditLimitMinor: m.creditLimitMinor,
        flagged: m.flagged,
        depositCount: Number(m.depositCount),
        withdrawalCount: Number(m.withdrawalCount),
        reversalCount: Number(m.reversalCount),
        rejectedCount: Number(m.rejectedCount),
        rejectedOperationCount: Number(m.rejectedOperationCount),
        lastDepositId: m.lastDepositId,
        lastDepositTimeMs: optionalMs(m.lastDepositTime),
        lastRejectionCode: m.lastRejectionCode,
        entryCount: Number(m.entryCount),
        lastRecordedMs: optionalMs(m.lastRecordedTime) ?? 0,
        transferOutCount: Number(m.transferOutCount),
        transferInCount: Number(m.transferInCount),
        pendingTransferCount: Number(m.pendingTransferCount),
        opened: m.opened,
        userId: m.userId,
        initialAmountMinor: m.initialAmountMinor,
        openedMs: optionalMs(m.openedTime),
      };
    }),
};

/** OperationRecord (ledger.proto): how the group keeps each decision with its id. */
export const operationRecordCodec: Codec<OperationRecord> = {
  encode: (r) =>
    toBinary(OperationRecordSchema, create(OperationRecordSchema, {
      kind: operationKindToPb(r.kind),
      amountMinor: r.amountMinor,
      reason: r.reason,
      createdTime: timestampFromMs(r.createdMs),
      decidedTime: timestampFromMs(r.decidedMs),
      description: r.description,
      reference: r.reference,
      position: r.position,
      entryId: BigInt(r.entryId),
      balanceAfterMinor: r.balanceAfterMinor,
      reversalOf: r.reversalOf,
      operationId: r.operationId,
      counterpartyWalletId: r.counterpartyWalletId,
      pending: r.pending,
      expiresTime: optionalTimestamp(r.expiresMs),
    })),
  decode: (bytes) =>
    decoding(() => {
      const m = fromBinary(OperationRecordSchema, bytes);
      return {
        kind: operationKindFromPb(m.kind),
        amountMinor: m.amountMinor,
        reason: m.reason,
        createdMs: toMs(m.createdTime, "created_time"),
        decidedMs: toMs(m.decidedTime, "decided_time"),
        description: m.description,
        reference: m.reference,
        position: m.position,
        entryId: Number(m.entryId),
        balanceAfterMinor: m.balanceAfterMinor,
        reversalOf: m.reversalOf,
        operationId: m.operationId,
        counterpartyWalletId: m.counterpartyWalletId,
        pending: m.pending,
        expiresMs: optionalMs(m.expiresTime),
      };
    }),
};

/**
 * The wallet ledger (the seed's collector, grown): decides every operation of a
 * wallet and keeps its balance, credit limit and flag. It reads the API's commands,
 * deposits from trusted producers, flags (a flagged wallet sends no money out), and
 * the steps of transfers, which it also emits (a transfer is a saga between two
 * wallets' actors, usually on two partitions). Each decision is kept with its
 * operation id (the dedupe and the audit trail in one row), and each change of the
 * balance is an entry published on `ledger`. Openings for a user are re-keyed by user
 * onto `user-wallets`. Its timers expire pending transfers.
 */
export const balance = defineGroup<WalletState, WalletInput, WalletOutput, OperationRecord>({
  name: "balance",
  description: "the wallet ledger (collector): decides deposits, withdrawals, credit limits, reversals, transfers and openings",
  aliases: ["collector", "wallet"],
  inputs: [
    on(commands, (command): WalletInput => ({ type: "command", source: "commands", command })),
    on(deposits, (d): WalletInput => ({
      type: "command",
      source: "deposits",
      command: { kind: "deposit", operationId: d.depositId, walletId: d.walletId, amountMinor: d.amountMinor, eventTimeMs: d.eventTimeMs, description: "", reference: "" },
    })),
    // Flag event ids are not operation ids: kept apart, so no client key can clash.
    on(flags, (change): WalletInput => ({ type: "flag", change }), { scope: "flags" }),
    // Step ids are derived from transfers, not client keys: kept apart as well.
    on(transfers, (step): WalletInput => ({ type: "transfer", step }), { scope: TRANSFER_SCOPE }),
  ],
  table: { schema: BalanceTableValueSchema, codec: tableCodec },
  records: {
    codec: operationRecordCodec,
    schema: OperationRecordSchema,
    entry: (r) => (r.entryId === 0 ? undefined : { seq: r.entryId, recordedMs: r.decidedMs }),
    derived: { topic: ledger, emit: entryFromRecord },
  },
  emits: [ledger, transfers, userWallets],
  view: true,
  actor: (config) =>
    walletActor({
      amountMaxMinor: config.depositAmountMaxMinor,
      balanceMaxMinor: config.balanceMaxMinor,
      creditLimitMaxMinor: config.creditLimitMaxMinor,
      transferAmountMaxMinor: config.transferAmountMaxMinor,
      transferTimeoutMs: config.transferTimeoutMs,
    }),
  emit: (out) => {
    switch (out.type) {
      case "entry":
        return to(ledger, out.entry);
      case "step":
        return to(transfers, out.step);
      case "opened":
        return to(userWallets, out.opened);
    }
  },
  onTimer: (fired): WalletInput => ({ type: "timer", fired }),
});

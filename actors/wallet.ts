import { assert } from "../src/runtime/errors.js";
import { terminal, type Actor, type ActorContext, type Decided, type DepositEvent, type FlagChange, type Outcome } from "./types.js";

/**
 * The wallet ledger's actor (the `balance` group): one per wallet, it decides every
 * operation of its wallet (deposits, withdrawals, credit-limit changes, reversals),
 * keeps the balance and writes the ledger's entries. See "The ledger" in
 * ARCHITECTURE.md and the README's operations model.
 */

export type OperationKind = "deposit" | "withdrawal" | "credit_limit" | "reversal";

/** A command to one wallet, as the actor sees it (topic `commands`, or a deposit from `deposits`). */
export type WalletCommand = {
  operationId: string;
  walletId: string;
  eventTimeMs: number;
  description: string;
  reference: string;
} & (
  | { kind: "deposit"; amountMinor: bigint }
  | { kind: "withdrawal"; amountMinor: bigint }
  | { kind: "credit_limit"; creditLimitMinor: bigint }
  | { kind: "reversal"; reversalOf: string }
);

/**
 * What the actor is handed: a command, and where it came from (deposits from trusted
 * producers on `deposits` keep that topic's rule: an amount no producer may send is
 * dead-lettered, not decided), or a change of the wallet's flag.
 */
export type WalletInput =
  | { type: "command"; source: "commands" | "deposits"; command: WalletCommand }
  | { type: "flag"; change: FlagChange };

/** A settled change to the balance: an entry of the immutable ledger. */
export interface LedgerEntry {
  walletId: string;
  /** 1, 2, 3, ... per wallet, without gaps. */
  entryId: number;
  operationId: string;
  kind: OperationKind;
  /** Signed: positive in, negative out. */
  amountMinor: bigint;
  balanceAfterMinor: bigint;
  eventTimeMs: number;
  recordedMs: number;
  description: string;
}

/** The decision on one operation, kept with its id for good (OperationRecord in ledger.proto). */
export interface OperationRecord {
  kind: OperationKind;
  /** Deposit, withdrawal: the amount; credit limit: the new limit; reversal: the amount taken back (0 if refused). */
  amountMinor: bigint;
  /** "" when settled, else the rule it broke. */
  reason: string;
  createdMs: number;
  decidedMs: number;
  description: string;
  reference: string;
  position: string;
  /** The entry it wrote, or 0. */
  entryId: number;
  balanceAfterMinor: bigint;
  reversalOf: string;
}

export interface WalletState {
  balanceMinor: bigint;
  /** Reserved by pending outgoing transfers (none yet: always 0 until transfers come). */
  heldMinor: bigint;
  creditLimitMinor: bigint;
  /** The wallet's flag as the ledger last saw it on `flags` (fraud: no money out). */
  flagged: boolean;
  depositCount: number;
  withdrawalCount: number;
  reversalCount: number;
  /** Deposits refused by a rule (GET /check's rejected_deposit_count). */
  rejectedCount: number;
  /** Operations of any kind refused by a rule. */
  rejectedOperationCount: number;
  lastDepositId: string;
  lastDepositTimeMs: number | null;
  lastRejectionCode: string;
  /** The number of the wallet's last entry: entries are 1..entryCount. */
  entryCount: number;
  /** When the last decision was recorded; recorded times never go back. */
  lastRecordedMs: number;
}

export interface WalletLimits {
  /** Inclusive maximum of one deposit or withdrawal, minor units. */
  amountMaxMinor: bigint;
  /** Inclusive maximum of a balance, minor units. */
  balanceMaxMinor: bigint;
  /** Inclusive maximum of a credit limit, minor units. */
  creditLimitMaxMinor: bigint;
}

/** Reasons an operation is refused, each named after the rule it breaks. */
export const REJECTION_REASONS = [
  "amount_must_be_positive",
  "amount_exceeds_max",
  "balance_would_exceed_max",
  "insufficient_funds",
  "rejected_fraud",
  "credit_limit_exceeds_max",
  "credit_limit_below_usage",
  "operation_not_reversible",
] as const;
export type RejectionReason = (typeof REJECTION_REASONS)[number];

export const available = (s: WalletState) => s.balanceMinor + s.creditLimitMinor - s.heldMinor;

export function initialWallet(): WalletState {
  return {
    balanceMinor: 0n,
    heldMinor: 0n,
    creditLimitMinor: 0n,
    flagged: false,
    depositCount: 0,
    withdrawalCount: 0,
    reversalCount: 0,
    rejectedCount: 0,
    rejectedOperationCount: 0,
    lastDepositId: "",
    lastDepositTimeMs: null,
    lastRejectionCode: "",
    entryCount: 0,
    lastRecordedMs: 0,
  };
}

type WalletOutcome = Outcome<WalletState, LedgerEntry, OperationRecord>;

export function walletActor(limits: WalletLimits): Actor<WalletState, WalletInput, LedgerEntry, OperationRecord> {
  return {
    name: "balance",
    initial: initialWallet,
    handle(state, input, context) {
      if (input.type === "flag") return { state: { ...state, flagged: input.change.flagged }, emits: [] };
      const outcome = decide(state, input, context, limits);
      if (!("terminal" in outcome)) checkInvariants(state, outcome, input.command);
      return outcome;
    },
  };
}

function decide(state: WalletState, input: Extract<WalletInput, { type: "command" }>, context: ActorContext<OperationRecord>, limits: WalletLimits): WalletOutcome {
  const command = input.command;
  const recordedMs = Math.max(context.nowMs, state.lastRecordedMs);
  const base = { createdMs: command.eventTimeMs, decidedMs: recordedMs, description: command.description, reference: command.reference, position: context.position };
  const reject = (reason: RejectionReason, amountMinor: bigint, reversalOf = ""): WalletOutcome => ({
    state: {
      ...state,
      rejectedOperationCount: state.rejectedOperationCount + 1,
      rejectedCount: state.rejectedCount + (command.kind === "deposit" ? 1 : 0),
      lastRejectionCode: reason,
      lastRecordedMs: recordedMs,
    },
    emits: [],
    rejection: reason,
    record: { ...base, kind: command.kind, amountMinor, reason, entryId: 0, balanceAfterMinor: state.balanceMinor, reversalOf },
  });
  /** Settles a change of the balance by `delta`: one new entry. */
  const settle = (delta: bigint, amountMinor: bigint, changes: Partial<WalletState>, reversalOf = ""): WalletOutcome => {
    const entryId = state.entryCount + 1;
    const balanceAfterMinor = state.balanceMinor + delta;
    return {
      state: { ...state, ...changes, balanceMinor: balanceAfterMinor, entryCount: entryId, lastRecordedMs: recordedMs },
      emits: [{
        walletId: command.walletId, entryId, operationId: command.operationId, kind: command.kind, amountMinor: delta,
        balanceAfterMinor, eventTimeMs: command.eventTimeMs, recordedMs, description: command.description,
      }],
      record: { ...base, kind: command.kind, amountMinor, reason: "", entryId, balanceAfterMinor, reversalOf },
    };
  };

  switch (command.kind) {
    case "deposit": {
      const invalid = amountRule(command.amountMinor, limits.amountMaxMinor);
      if (invalid) return input.source === "deposits" ? terminal(invalid.code, invalid.message) : reject(invalid.code, command.amountMinor);
      if (state.balanceMinor + command.amountMinor > limits.balanceMaxMinor) return reject("balance_would_exceed_max", command.amountMinor);
      return settle(command.amountMinor, command.amountMinor, {
        depositCount: state.depositCount + 1, lastDepositId: command.operationId, lastDepositTimeMs: command.eventTimeMs,
      });
    }
    case "withdrawal": {
      const invalid = amountRule(command.amountMinor, limits.amountMaxMinor);
      if (invalid) return reject(invalid.code, command.amountMinor);
      if (state.flagged) return reject("rejected_fraud", command.amountMinor);
      if (command.amountMinor > available(state)) return reject("insufficient_funds", command.amountMinor);
      return settle(-command.amountMinor, command.amountMinor, { withdrawalCount: state.withdrawalCount + 1 });
    }
    case "credit_limit": {
      const limit = command.creditLimitMinor;
      if (limit < 0n) return reject("amount_must_be_positive", limit);
      if (limit > limits.creditLimitMaxMinor) return reject("credit_limit_exceeds_max", limit);
      if (state.balanceMinor + limit - state.heldMinor < 0n) return reject("credit_limit_below_usage", limit);
      return {
        state: { ...state, creditLimitMinor: limit, lastRecordedMs: recordedMs },
        emits: [],
        record: { ...base, kind: "credit_limit", amountMinor: limit, reason: "", entryId: 0, balanceAfterMinor: state.balanceMinor, reversalOf: "" },
      };
    }
    case "reversal": {
      // Only a settled deposit can bounce. A reversal's id is derived from the
      // deposit's, so reversing twice is one operation, deduplicated by the runtime.
      // A deposit not decided yet is not refused for good, which would bind the
      // derived id and make it irreversible once it settles: the command is dead-
      // lettered and the id left free (the API answers 404 before sending one).
      const target = context.recorded(command.reversalOf);
      if (!target) return terminal("operation_not_found", `wallet ${command.walletId} has no operation ${command.reversalOf} to reverse`);
      if (target.kind !== "deposit" || target.reason !== "") return reject("operation_not_reversible", 0n, command.reversalOf);
      return settle(-target.amountMinor, target.amountMinor, { reversalCount: state.reversalCount + 1 }, command.reversalOf);
    }
  }
}

function amountRule(amountMinor: bigint, maxMinor: bigint): { code: RejectionReason; message: string } | undefined {
  if (amountMinor <= 0n) return { code: "amount_must_be_positive", message: `amount_minor must be positive, got ${amountMinor}` };
  if (amountMinor > maxMinor) return { code: "amount_exceeds_max", message: `amount_minor may be at most ${maxMinor}, got ${amountMinor}` };
  return undefined;
}

/**
 * The ledger's invariants, checked after every decision; a broken one is a bug and
 * stops the process (AssertionError).
 */
function checkInvariants(before: WalletState, outcome: Decided<WalletState, LedgerEntry, OperationRecord>, command: WalletCommand): void {
  const after = outcome.state;
  assert(after.heldMinor >= 0n, "held must never be negative");
  // Only a reversal may take available below zero; otherwise it stays >= 0, or, in a
  // debt a reversal made, does not fall further.
  if (command.kind !== "reversal") {
    assert(available(after) >= 0n || available(after) >= available(before), `available fell below zero: ${available(after)}`);
  }
  if (outcome.rejection !== undefined) {
    assert(after.balanceMinor === before.balanceMinor && after.entryCount === before.entryCount, "a rejection must not change the balance");
    return;
  }
  const entries = outcome.emits;
  assert(entries.length <= 1, "one operation writes at most one entry");
  const entry = entries[0];
  if (!entry) {
    assert(after.balanceMinor === before.balanceMinor, "a change of the balance must write an entry");
    return;
  }
  assert(entry.entryId === before.entryCount + 1 && after.entryCount === entry.entryId, "entries are numbered without gaps");
  assert(entry.balanceAfterMinor === before.balanceMinor + entry.amountMinor, "balance_after must be the previous balance plus the amount");
  assert(after.balanceMinor === entry.balanceAfterMinor, "the balance must equal the last entry's balance_after");
  assert(entry.recordedMs >= before.lastRecordedMs, "recorded times must not go back");
  if (entry.amountMinor < 0n && command.kind === "withdrawal") assert(available(after) >= 0n, "a settled withdrawal must leave available >= 0");
}

/** The amount rules every producer of deposits must keep, shared by the detector. */
export function invalidAmount(deposit: DepositEvent, amountMaxMinor: bigint) {
  const invalid = amountRule(deposit.amountMinor, amountMaxMinor);
  return invalid && terminal(invalid.code, invalid.message);
}

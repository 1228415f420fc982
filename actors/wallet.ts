import { assert } from "../src/runtime/errors.js";
import { terminal, type Actor, type ActorContext, type Decided, type DepositEvent, type FiredTimer, type FlagChange, type Outcome, type TimerRequest } from "./types.js";

/**
 * The wallet ledger's actor (the `balance` group): one per wallet, it decides every
 * operation of its wallet (deposits, withdrawals, credit-limit changes, reversals,
 * transfers, its opening), keeps the balance and writes the ledger's entries. A
 * transfer is a saga between two wallets' actors (see TransferStep in ledger.proto):
 * each side's step is one decision of this actor. See "The ledger" in ARCHITECTURE.md
 * and the README's operations model.
 */

export type OperationKind = "deposit" | "withdrawal" | "credit_limit" | "reversal" | "transfer" | "transfer_out" | "transfer_in" | "open";

/** The operation id of a wallet's opening: one per wallet. */
export const OPEN_OPERATION_ID = "open";

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
  | { kind: "transfer"; toWalletId: string; amountMinor: bigint }
  | { kind: "open"; userId: string; initialAmountMinor: bigint }
);

export type TransferStepKind = "credit_requested" | "credit_applied" | "credit_refused" | "cancel_requested";

/** One step of a transfer's saga (topic `transfers`), for the wallet that decides it. */
export interface TransferStep {
  step: TransferStepKind;
  transferId: string;
  fromWalletId: string;
  toWalletId: string;
  amountMinor: bigint;
  eventTimeMs: number;
  /** The deadline: a destination deciding the credit at or after it refuses it (transfer_expired). */
  expiresMs: number;
  description: string;
  /** credit_refused: why. */
  reason: string;
  /** credit_applied: the destination's entry. */
  entryId: number;
}

/** The wallet a step is for: the destination decides requests and cancels, the source outcomes. */
export const stepWallet = (s: TransferStep) => (s.step === "credit_requested" || s.step === "cancel_requested" ? s.toWalletId : s.fromWalletId);

/**
 * The id a step is decided under by its wallet (in the `transfer` scope). At the
 * source, both outcomes share one id, so that only one can ever count; at the
 * destination the source is part of it, as transfer ids are unique per source only.
 */
export function transferStepId(s: Pick<TransferStep, "step" | "transferId" | "fromWalletId">): string {
  switch (s.step) {
    case "credit_applied":
    case "credit_refused":
      return `outcome:${s.transferId}`;
    case "credit_requested":
      return `credit:${s.fromWalletId.length}:${s.fromWalletId}:${s.transferId}`;
    case "cancel_requested":
      return `cancel:${s.fromWalletId.length}:${s.fromWalletId}:${s.transferId}`;
  }
}

/** The scope of transfer steps among a wallet's event ids. */
export const TRANSFER_SCOPE = "transfer";
/** The timer that expires a pending transfer at its source. */
export const transferTimerId = (transferId: string) => `transfer:${transferId}`;

/** A wallet opened for a user (topic `user-wallets`, keyed by the user). */
export interface WalletOpened {
  userId: string;
  walletId: string;
  openedMs: number;
}

/** What the actor emits: ledger entries, transfer steps, openings. */
export type WalletOutput =
  | { type: "entry"; entry: LedgerEntry }
  | { type: "step"; step: TransferStep }
  | { type: "opened"; opened: WalletOpened };

/**
 * What the actor is handed: a command, and where it came from (deposits from trusted
 * producers on `deposits` keep that topic's rule: an amount no producer may send is
 * dead-lettered, not decided), or a change of the wallet's flag.
 */
export type WalletInput =
  | { type: "command"; source: "commands" | "deposits"; command: WalletCommand }
  | { type: "flag"; change: FlagChange }
  | { type: "transfer"; step: TransferStep }
  | { type: "timer"; fired: FiredTimer };

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
  /** Transfers: the other wallet; "" otherwise. */
  counterpartyWalletId: string;
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
  /** The operation it belongs to when kept under another id (a transfer's steps); "" otherwise. */
  operationId: string;
  counterpartyWalletId: string;
  /** A transfer waiting for its destination: its final status is its outcome step's record. */
  pending: boolean;
  /** Pending transfers: when the source cancels it. */
  expiresMs: number | null;
}

export interface WalletState {
  balanceMinor: bigint;
  /** Reserved by pending outgoing transfers. */
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
  transferOutCount: number;
  transferInCount: number;
  /** Outgoing transfers waiting for their destination; each holds its amount. */
  pendingTransferCount: number;
  /** Opened by POST /wallets, for `userId` (empty: none), with `initialAmountMinor`. */
  opened: boolean;
  userId: string;
  initialAmountMinor: bigint;
  openedMs: number | null;
}

export interface WalletLimits {
  /** Inclusive maximum of one deposit or withdrawal, minor units. */
  amountMaxMinor: bigint;
  /** Inclusive maximum of a balance, minor units. */
  balanceMaxMinor: bigint;
  /** Inclusive maximum of a credit limit, minor units. */
  creditLimitMaxMinor: bigint;
  /** Inclusive maximum of one transfer, minor units. */
  transferAmountMaxMinor: bigint;
  /** A transfer still pending this long after its hold is cancelled. */
  transferTimeoutMs: number;
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
  "same_wallet",
  "destination_not_found",
  "transfer_expired",
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
    transferOutCount: 0,
    transferInCount: 0,
    pendingTransferCount: 0,
    opened: false,
    userId: "",
    initialAmountMinor: 0n,
    openedMs: null,
  };
}

/**
 * The ledger entry a decision's record wrote, if any: every field of an entry is kept
 * in the record, so the entry can be derived again (a restoring instance does, rather
 * than keep a second copy of each entry in the changelog). The actor asserts that the
 * entry it emits is this one.
 */
export function entryFromRecord(walletId: string, eventId: string, r: OperationRecord): LedgerEntry | undefined {
  if (r.entryId === 0) return undefined;
  const inbound = r.kind === "deposit" || r.kind === "transfer_in" || r.kind === "open";
  return {
    walletId, entryId: r.entryId, operationId: r.operationId || eventId, kind: r.kind, amountMinor: inbound ? r.amountMinor : -r.amountMinor,
    balanceAfterMinor: r.balanceAfterMinor, eventTimeMs: r.createdMs, recordedMs: r.decidedMs, description: r.description, counterpartyWalletId: r.counterpartyWalletId,
  };
}

/** A wallet exists once opened or once it has received money: only then can it be paid. */
export const exists = (s: WalletState) => s.opened || s.entryCount > 0;

type WalletOutcome = Outcome<WalletState, WalletOutput, OperationRecord>;
type Context = ActorContext<OperationRecord>;

export function walletActor(limits: WalletLimits): Actor<WalletState, WalletInput, WalletOutput, OperationRecord> {
  return {
    name: "balance",
    initial: initialWallet,
    handle(state, input, context) {
      let outcome: WalletOutcome;
      switch (input.type) {
        case "flag":
          return { state: { ...state, flagged: input.change.flagged }, emits: [] };
        case "command":
          outcome = decide(state, input, context, limits);
          break;
        case "transfer":
          outcome = stepDecision(state, input.step, context, limits);
          break;
        case "timer":
          outcome = timerDecision(state, input.fired, context);
          break;
      }
      if (!("terminal" in outcome)) checkInvariants(state, outcome, input.type === "command" ? input.command.kind : input.type);
      return outcome;
    },
  };
}

const recordedAt = (state: WalletState, context: Context) => Math.max(context.nowMs, state.lastRecordedMs);

/** A record's fields that most decisions leave at their defaults. */
const RECORD_DEFAULTS = { entryId: 0, reversalOf: "", operationId: "", counterpartyWalletId: "", pending: false, expiresMs: null } as const;

/**
 * A new entry of `walletId`'s ledger, changing the balance by `delta`: the next entry
 * id, the balance after, and the state with both.
 */
function entryOf(state: WalletState, recordedMs: number, delta: bigint, fields: Pick<LedgerEntry, "walletId" | "operationId" | "kind" | "eventTimeMs" | "description" | "counterpartyWalletId">): { entry: LedgerEntry; state: WalletState } {
  const entryId = state.entryCount + 1;
  const balanceAfterMinor = state.balanceMinor + delta;
  return {
    entry: { ...fields, entryId, amountMinor: delta, balanceAfterMinor, recordedMs },
    state: { ...state, balanceMinor: balanceAfterMinor, entryCount: entryId, lastRecordedMs: recordedMs },
  };
}

function decide(state: WalletState, input: Extract<WalletInput, { type: "command" }>, context: Context, limits: WalletLimits): WalletOutcome {
  const command = input.command;
  const recordedMs = recordedAt(state, context);
  const base = { ...RECORD_DEFAULTS, createdMs: command.eventTimeMs, decidedMs: recordedMs, description: command.description, reference: command.reference, position: context.position };
  const reject = (reason: RejectionReason, amountMinor: bigint, extra: Partial<OperationRecord> = {}): WalletOutcome => ({
    state: {
      ...state,
      rejectedOperationCount: state.rejectedOperationCount + 1,
      rejectedCount: state.rejectedCount + (command.kind === "deposit" ? 1 : 0),
      lastRejectionCode: reason,
      lastRecordedMs: recordedMs,
    },
    emits: [],
    rejection: reason,
    record: { ...base, kind: command.kind, amountMinor, reason, balanceAfterMinor: state.balanceMinor, ...extra },
  });
  /** Settles a change of the balance by `delta`: one new entry. */
  const settle = (delta: bigint, amountMinor: bigint, changes: Partial<WalletState>, reversalOf = "", more: WalletOutput[] = []): WalletOutcome => {
    const next = entryOf({ ...state, ...changes }, recordedMs, delta, {
      walletId: command.walletId, operationId: command.operationId, kind: command.kind, eventTimeMs: command.eventTimeMs, description: command.description, counterpartyWalletId: "",
    });
    return {
      state: next.state,
      emits: [{ type: "entry", entry: next.entry }, ...more],
      record: { ...base, kind: command.kind, amountMinor, reason: "", entryId: next.entry.entryId, balanceAfterMinor: next.entry.balanceAfterMinor, reversalOf },
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
        record: { ...base, kind: "credit_limit", amountMinor: limit, reason: "", balanceAfterMinor: state.balanceMinor },
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
      if (target.kind !== "deposit" || target.reason !== "") return reject("operation_not_reversible", 0n, { reversalOf: command.reversalOf });
      return settle(-target.amountMinor, target.amountMinor, { reversalCount: state.reversalCount + 1 }, command.reversalOf);
    }
    case "transfer": {
      // Step 1 of the saga, at the source: the rules, then a hold and a request to the
      // destination, and a timer that cancels the request if nobody decides it in time.
      const amountMinor = command.amountMinor;
      const counterparty = { counterpartyWalletId: command.toWalletId };
      const invalid = amountRule(amountMinor, limits.transferAmountMaxMinor);
      if (invalid) return reject(invalid.code, amountMinor, counterparty);
      if (command.toWalletId === command.walletId) return reject("same_wallet", amountMinor, counterparty);
      if (state.flagged) return reject("rejected_fraud", amountMinor, counterparty);
      if (amountMinor > available(state)) return reject("insufficient_funds", amountMinor, counterparty);
      // Pending counts from when the API accepted it (never later than now): a transfer
      // that waited out the timeout before its source got to it expires at once.
      const expiresMs = Math.min(command.eventTimeMs, recordedMs) + limits.transferTimeoutMs;
      const step: TransferStep = {
        step: "credit_requested", transferId: command.operationId, fromWalletId: command.walletId, toWalletId: command.toWalletId,
        amountMinor, eventTimeMs: command.eventTimeMs, expiresMs, description: command.description, reason: "", entryId: 0,
      };
      return {
        state: { ...state, heldMinor: state.heldMinor + amountMinor, pendingTransferCount: state.pendingTransferCount + 1, lastRecordedMs: recordedMs },
        emits: [{ type: "step", step }],
        record: { ...base, kind: "transfer", amountMinor, reason: "", balanceAfterMinor: state.balanceMinor, ...counterparty, pending: true, expiresMs },
        timers: [{ id: transferTimerId(command.operationId), dueMs: expiresMs }],
      };
    }
    case "open": {
      // The wallet's one opening (its id is always "open": the runtime makes a repeat
      // the same operation, and other content a conflict).
      const initial = command.initialAmountMinor;
      if (initial < 0n) return reject("amount_must_be_positive", initial);
      if (initial > limits.amountMaxMinor) return reject("amount_exceeds_max", initial);
      if (state.balanceMinor + initial > limits.balanceMaxMinor) return reject("balance_would_exceed_max", initial);
      const changes = { opened: true, userId: command.userId, initialAmountMinor: initial, openedMs: recordedMs };
      const opened: WalletOutput[] = command.userId === "" ? [] : [{ type: "opened", opened: { userId: command.userId, walletId: command.walletId, openedMs: recordedMs } }];
      if (initial > 0n) return settle(initial, initial, changes, "", opened);
      return {
        state: { ...state, ...changes, lastRecordedMs: recordedMs },
        emits: opened,
        record: { ...base, kind: "open", amountMinor: 0n, reason: "", balanceAfterMinor: state.balanceMinor },
      };
    }
  }
}

/**
 * Steps 2 and 3 of a transfer's saga: the destination decides a credit request or a
 * cancel; the source settles or releases its hold on the outcome.
 */
function stepDecision(state: WalletState, step: TransferStep, context: Context, limits: WalletLimits): WalletOutcome {
  const recordedMs = recordedAt(state, context);
  const record = (fields: Pick<OperationRecord, "kind" | "reason" | "entryId" | "balanceAfterMinor">, counterpartyWalletId: string): OperationRecord => ({
    ...RECORD_DEFAULTS, ...fields, amountMinor: step.amountMinor, createdMs: step.eventTimeMs, decidedMs: recordedMs, description: step.description,
    reference: "", position: context.position, operationId: step.transferId, counterpartyWalletId,
  });
  const reply = (kind: "credit_applied" | "credit_refused", reason: string, entryId: number): WalletOutput => ({ type: "step", step: { ...step, step: kind, reason, entryId } });
  switch (step.step) {
    case "credit_requested": {
      const from = step.fromWalletId;
      // Refused without a reply: the cancel came first, and its refusal was the reply.
      if (context.recorded(transferStepId({ ...step, step: "cancel_requested" }), TRANSFER_SCOPE)) {
        return { state: { ...state, lastRecordedMs: recordedMs }, emits: [], rejection: "transfer_expired", record: record({ kind: "transfer_in", reason: "transfer_expired", entryId: 0, balanceAfterMinor: state.balanceMinor }, from) };
      }
      const refusal: RejectionReason | undefined = recordedMs >= step.expiresMs
        ? "transfer_expired"
        : !exists(state)
          ? "destination_not_found"
          : state.balanceMinor + step.amountMinor > limits.balanceMaxMinor ? "balance_would_exceed_max" : undefined;
      if (refusal) {
        return {
          state: { ...state, lastRecordedMs: recordedMs },
          emits: [reply("credit_refused", refusal, 0)],
          rejection: refusal,
          record: record({ kind: "transfer_in", reason: refusal, entryId: 0, balanceAfterMinor: state.balanceMinor }, from),
        };
      }
      const next = entryOf(state, recordedMs, step.amountMinor, {
        walletId: step.toWalletId, operationId: step.transferId, kind: "transfer_in", eventTimeMs: step.eventTimeMs, description: step.description, counterpartyWalletId: from,
      });
      return {
        state: { ...next.state, transferInCount: state.transferInCount + 1 },
        emits: [{ type: "entry", entry: next.entry }, reply("credit_applied", "", next.entry.entryId)],
        record: record({ kind: "transfer_in", reason: "", entryId: next.entry.entryId, balanceAfterMinor: next.entry.balanceAfterMinor }, from),
      };
    }
    case "cancel_requested": {
      // Decided already (credited or refused): the cancel changes nothing.
      if (context.recorded(transferStepId({ ...step, step: "credit_requested" }), TRANSFER_SCOPE)) return { state, emits: [] };
      return {
        state: { ...state, lastRecordedMs: recordedMs },
        emits: [reply("credit_refused", "transfer_expired", 0)],
        rejection: "transfer_expired",
        record: record({ kind: "transfer_in", reason: "transfer_expired", entryId: 0, balanceAfterMinor: state.balanceMinor }, step.fromWalletId),
      };
    }
    case "credit_applied":
    case "credit_refused": {
      const pending = context.recorded(step.transferId);
      if (!pending || pending.kind !== "transfer" || !pending.pending) {
        return terminal("transfer_not_found", `wallet ${step.fromWalletId} has no pending transfer ${step.transferId}`);
      }
      if (pending.amountMinor !== step.amountMinor || pending.counterpartyWalletId !== step.toWalletId) {
        return terminal("transfer_mismatch", `transfer ${step.transferId} holds ${pending.amountMinor} for ${pending.counterpartyWalletId}, not ${step.amountMinor} for ${step.toWalletId}`);
      }
      const released = { ...state, heldMinor: state.heldMinor - step.amountMinor, pendingTransferCount: state.pendingTransferCount - 1 };
      const timers: TimerRequest[] = [{ id: transferTimerId(step.transferId), dueMs: null }];
      const to = step.toWalletId;
      if (step.step === "credit_refused") {
        return {
          state: { ...released, rejectedOperationCount: state.rejectedOperationCount + 1, lastRejectionCode: step.reason, lastRecordedMs: recordedMs },
          emits: [],
          rejection: step.reason,
          record: { ...record({ kind: "transfer", reason: step.reason, entryId: 0, balanceAfterMinor: state.balanceMinor }, to), createdMs: pending.createdMs, reference: pending.reference },
          timers,
        };
      }
      const next = entryOf(released, recordedMs, -step.amountMinor, {
        walletId: step.fromWalletId, operationId: step.transferId, kind: "transfer_out", eventTimeMs: step.eventTimeMs, description: step.description, counterpartyWalletId: to,
      });
      return {
        state: { ...next.state, transferOutCount: state.transferOutCount + 1 },
        emits: [{ type: "entry", entry: next.entry }],
        record: { ...record({ kind: "transfer_out", reason: "", entryId: next.entry.entryId, balanceAfterMinor: next.entry.balanceAfterMinor }, to), createdMs: pending.createdMs, reference: pending.reference },
        timers,
      };
    }
  }
}

/** A pending transfer's deadline, at its source: ask the destination to cancel it. */
function timerDecision(state: WalletState, fired: FiredTimer, context: Context): WalletOutcome {
  const transferId = fired.timerId.startsWith("transfer:") ? fired.timerId.slice("transfer:".length) : undefined;
  if (transferId === undefined) return terminal("timer_unknown", `the wallet sets no timer ${fired.timerId}`);
  const pending = context.recorded(transferId);
  // The outcome came first (its commit clears the timer, so only a stale firing gets here).
  if (!pending?.pending || context.recorded(transferStepId({ step: "credit_applied", transferId, fromWalletId: fired.walletId }), TRANSFER_SCOPE)) {
    return { state, emits: [] };
  }
  const step: TransferStep = {
    step: "cancel_requested", transferId, fromWalletId: fired.walletId, toWalletId: pending.counterpartyWalletId,
    amountMinor: pending.amountMinor, eventTimeMs: pending.createdMs, expiresMs: pending.expiresMs ?? fired.dueMs, description: pending.description, reason: "", entryId: 0,
  };
  return { state, emits: [{ type: "step", step }] };
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
function checkInvariants(before: WalletState, outcome: Decided<WalletState, WalletOutput, OperationRecord>, kind: string): void {
  const after = outcome.state;
  assert(after.heldMinor >= 0n && after.pendingTransferCount >= 0, "held and pending transfers must never be negative");
  assert(after.pendingTransferCount > 0 || after.heldMinor === 0n, "money can only be held by a pending transfer");
  // Only a reversal may take available below zero; otherwise it stays >= 0, or, in a
  // debt a reversal made, does not fall further.
  if (kind !== "reversal") {
    assert(available(after) >= 0n || available(after) >= available(before), `available fell below zero: ${available(after)}`);
  }
  assert(after.lastRecordedMs >= before.lastRecordedMs, "recorded times must not go back");
  const entries = outcome.emits.flatMap((e) => (e.type === "entry" ? [e.entry] : []));
  assert(entries.length <= 1, "one decision writes at most one entry");
  if (outcome.rejection !== undefined) {
    assert(after.balanceMinor === before.balanceMinor && entries.length === 0, "a rejection must not change the balance");
    return;
  }
  const entry = entries[0];
  if (!entry) {
    assert(after.balanceMinor === before.balanceMinor, "a change of the balance must write an entry");
    return;
  }
  assert(entry.entryId === before.entryCount + 1 && after.entryCount === entry.entryId, "entries are numbered without gaps");
  assert(entry.balanceAfterMinor === before.balanceMinor + entry.amountMinor, "balance_after must be the previous balance plus the amount");
  assert(after.balanceMinor === entry.balanceAfterMinor, "the balance must equal the last entry's balance_after");
  assert(entry.recordedMs >= before.lastRecordedMs, "recorded times must not go back");
  if (entry.amountMinor < 0n && kind === "withdrawal") assert(available(after) >= 0n, "a settled withdrawal must leave available >= 0");
  // A transfer's debit releases exactly the hold it takes from the balance.
  if (entry.kind === "transfer_out") assert(before.heldMinor - after.heldMinor === -entry.amountMinor, "a transfer's debit must release its hold");
  const derived = outcome.record && entryFromRecord(entry.walletId, entry.operationId, outcome.record);
  assert(
    derived !== undefined && (Object.keys(entry) as (keyof LedgerEntry)[]).every((k) => derived[k] === entry[k]),
    "the entry must be the one its record derives",
  );
}

/** The amount rules every producer of deposits must keep, shared by the detector. */
export function invalidAmount(deposit: DepositEvent, amountMaxMinor: bigint) {
  const invalid = amountRule(deposit.amountMinor, amountMaxMinor);
  return invalid && terminal(invalid.code, invalid.message);
}

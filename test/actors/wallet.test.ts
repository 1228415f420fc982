// The wallet actor (the `balance` group) driven directly, without the runtime: a
// model-based property over random operation sequences, and a table of every rule
// that refuses an operation. The driver plays the runtime's part (an id decided once
// is never decided again; a repeat with other content is a dead letter, not a
// decision; a timer's firing is decided only while the timer is pending at that due
// time) and the model is written from the operations' rules, not from the actor.
//
// One wallet is under test; the other side of its transfers is a wallet the test
// plays by hand: it answers the wallet's requests (or forges answers), and sends it
// credit requests and cancels of its own. Transfers across several real wallets are
// in transfer.test.ts.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { isTerminal, type TimerRequest } from "../../actors/types.js";
import {
  REJECTION_REASONS,
  TRANSFER_SCOPE,
  transferStepId,
  transferTimerId,
  walletActor,
  type LedgerEntry,
  type OperationKind,
  type OperationRecord,
  type TransferStep,
  type WalletCommand,
  type WalletInput,
  type WalletLimits,
  type WalletOpened,
  type WalletState,
} from "../../actors/wallet.js";
import { scopedId } from "../../src/runtime/group.js";
import { TIMER_SCOPE } from "../../src/runtime/timers.js";
import { reversalId } from "../../src/topics/commands.js";
import { CREDIT_REFUSAL_REASONS, transfers } from "../../src/topics/transfers.js";
import { KeptIds, splitEmits } from "./runtime-imitation.js";

// Small limits, so that every rule's edge is within reach of a short sequence. A
// transfer's maximum differs from a deposit's, so that a test can tell which applies.
const LIMITS: WalletLimits = { amountMaxMinor: 1_000n, balanceMaxMinor: 3_000n, creditLimitMaxMinor: 1_500n, transferAmountMaxMinor: 800n, transferTimeoutMs: 5_000 };
const WALLET = "w";
/** The wallet on the other side of every transfer, played by the test. */
const OTHER = "v";

type Source = "commands" | "deposits";
type RefusalReason = (typeof CREDIT_REFUSAL_REASONS)[number];

// ---------------------------------------------------------------------------
// The driver: the actor plus what the runtime would do around it.
// ---------------------------------------------------------------------------

/** What became of one input, as the runtime would see it. */
type Observed =
  | { type: "flag" }
  | { type: "repeat" }
  | { type: "conflict" }
  /** A timer's firing for a timer not pending at that due time: not handed to the actor. */
  | { type: "skipped" }
  | { type: "terminal"; code: string }
  | {
      type: "decided";
      rejection: string | undefined;
      record: OperationRecord | undefined;
      /** The ledger entries it wrote. */
      emits: LedgerEntry[];
      /** The transfer steps it sent, and the openings it announced. */
      steps: TransferStep[];
      opened: WalletOpened[];
      timers: TimerRequest[];
    };

class Driver {
  readonly actor = walletActor(LIMITS);
  state: WalletState = this.actor.initial();
  /** What the runtime keeps per decided id (by its scoped id), and the pending timers. */
  readonly ids = new KeptIds();
  /** Every entry the actor emitted, in order. */
  readonly entries: LedgerEntry[] = [];
  private step = 0;

  get kept() {
    return this.ids.kept;
  }

  get timers() {
    return this.ids.timers;
  }

  /** Hands one input over, as the runtime would: at `position`, the processor's clock at `nowMs`. */
  send(input: WalletInput, nowMs: number, position = `test:0:${++this.step}`): Observed {
    const admitted = this.ids.admit(input);
    if (admitted.type !== "admitted") return { type: admitted.type };
    const before = this.state;
    const outcome = this.actor.handle(before, input, this.ids.context(nowMs, position));
    if (isTerminal(outcome)) return { type: "terminal", code: outcome.terminal.code };
    this.state = outcome.state;
    if (input.type === "flag") {
      expect(outcome.emits).toEqual([]);
      expect(outcome.record).toBeUndefined();
      expect(outcome.rejection).toBeUndefined();
      expect(outcome.timers ?? []).toEqual([]);
      return { type: "flag" };
    }
    this.ids.keep(admitted.identity!, outcome);
    const { entries, steps, opened } = splitEmits(outcome.emits);
    const seen = { type: "decided" as const, rejection: outcome.rejection, record: outcome.record, emits: entries, steps, opened, timers: outcome.timers ?? [] };
    this.entries.push(...seen.emits);
    return seen;
  }
}

// ---------------------------------------------------------------------------
// The model, from the rules alone.
// ---------------------------------------------------------------------------

/** An outgoing transfer the wallet holds money for, until its destination answers. */
interface Outgoing {
  amount: bigint;
  expiresMs: number;
  to: string;
  createdMs: number;
  description: string;
  reference: string;
}

const stepEventId = (step: TransferStep["step"], id: string, from: string) => scopedId({ scope: TRANSFER_SCOPE }, transferStepId({ step, transferId: id, fromWalletId: from }));
const timerEventId = (timerId: string, dueMs: number) => scopedId({ scope: TIMER_SCOPE }, `${timerId}@${dueMs}`);

const NO_TRANSFER = { operationId: "", counterpartyWalletId: "", pending: false, expiresMs: null } as const;

class Model {
  balance = 0n;
  held = 0n;
  creditLimit = 0n;
  flagged = false;
  lastRecordedMs = 0;
  depositCount = 0;
  withdrawalCount = 0;
  reversalCount = 0;
  rejectedDepositCount = 0;
  rejectedCount = 0;
  lastRejection = "";
  lastDepositId = "";
  lastDepositTimeMs: number | null = null;
  transferOutCount = 0;
  transferInCount = 0;
  opened = false;
  userId = "";
  initialAmount = 0n;
  openedMs: number | null = null;
  /** Every id decided (as the runtime scopes it): what it did, and its record. */
  readonly ops = new Map<string, { content: string; record: OperationRecord | undefined }>();
  readonly history: LedgerEntry[] = [];
  /** Outgoing transfers not answered yet, by id. */
  readonly pending = new Map<string, Outgoing>();
  /** Outgoing transfers, answered or not, by id. */
  readonly outgoing = new Map<string, Outgoing>();
  /** Pending timers: id → due. */
  readonly timers = new Map<string, number>();
  /** Incoming transfers whose cancel came before their credit request. */
  readonly expired = new Set<string>();
  /** Incoming transfers whose credit request was decided. */
  readonly creditDecided = new Set<string>();

  /** Money the wallet may still send. */
  get available(): bigint {
    return this.balance + this.creditLimit - this.held;
  }

  /** A wallet can be paid once opened or once it has had money. */
  get exists(): boolean {
    return this.opened || this.history.length > 0;
  }

  /** What makes two commands with one id the same operation: what they do, not their words. */
  static content(c: WalletCommand): string {
    switch (c.kind) {
      case "reversal":
        return `reversal of ${c.reversalOf}`;
      case "credit_limit":
        return `limit ${c.creditLimitMinor}`;
      case "transfer":
        return `transfer ${c.amountMinor} to ${c.toWalletId}`;
      case "open":
        return `open for ${c.userId} with ${c.initialAmountMinor}`;
      default:
        return `${c.kind} ${c.amountMinor}`;
    }
  }

  static stepContent(s: TransferStep): string {
    return `${s.step} ${s.amountMinor} ${s.fromWalletId}->${s.toWalletId} ${s.reason}`;
  }

  private entry(fields: { operationId: string; kind: OperationKind; delta: bigint; eventTimeMs: number; description: string; counterparty: string }, recordedMs: number): LedgerEntry {
    this.balance += fields.delta;
    const entry: LedgerEntry = {
      walletId: WALLET, entryId: this.history.length + 1, operationId: fields.operationId, kind: fields.kind, amountMinor: fields.delta,
      balanceAfterMinor: this.balance, eventTimeMs: fields.eventTimeMs, recordedMs, description: fields.description, counterpartyWalletId: fields.counterparty,
    };
    this.history.push(entry);
    return entry;
  }

  apply(input: WalletInput, nowMs: number, position: string): Observed {
    if (input.type === "flag") {
      this.flagged = input.change.flagged;
      return { type: "flag" };
    }
    let id: string;
    let content: string;
    switch (input.type) {
      case "command":
        id = input.command.operationId;
        content = Model.content(input.command);
        break;
      case "transfer":
        id = stepEventId(input.step.step, input.step.transferId, input.step.fromWalletId);
        content = Model.stepContent(input.step);
        break;
      case "timer":
        id = timerEventId(input.fired.timerId, input.fired.dueMs);
        content = `${input.fired.dueMs}`;
        break;
    }
    const known = this.ops.get(id);
    if (known) return known.content === content ? { type: "repeat" } : { type: "conflict" };
    const decided = (fields: Partial<Extract<Observed, { type: "decided" }>>, record?: OperationRecord): Observed => {
      this.ops.set(id, { content, record });
      return { type: "decided", rejection: undefined, record, emits: [], steps: [], opened: [], timers: [], ...fields };
    };
    const decidedMs = Math.max(nowMs, this.lastRecordedMs);

    if (input.type === "timer") {
      const fired = input.fired;
      if (this.timers.get(fired.timerId) !== fired.dueMs) {
        this.ops.set(id, { content, record: undefined });
        return { type: "skipped" };
      }
      this.timers.delete(fired.timerId);
      const transfer = fired.timerId.slice("transfer:".length);
      const held = this.pending.get(transfer);
      // A pending transfer's deadline: ask its destination to cancel. (Nothing is recorded.)
      if (!held) return decided({});
      return decided({
        steps: [{ step: "cancel_requested", transferId: transfer, fromWalletId: WALLET, toWalletId: held.to, amountMinor: held.amount, eventTimeMs: held.createdMs, expiresMs: held.expiresMs, description: held.description, reason: "", entryId: 0 }],
      });
    }

    if (input.type === "transfer") {
      const s = input.step;
      const stepRecord = (kind: OperationKind, reason: string, entryId: number, counterparty: string): OperationRecord => ({
        kind, amountMinor: s.amountMinor, reason, createdMs: s.eventTimeMs, decidedMs, description: s.description, reference: "", position,
        entryId, balanceAfterMinor: this.balance, reversalOf: "", operationId: s.transferId, counterpartyWalletId: counterparty, pending: false, expiresMs: null,
      });
      const reply = (step: "credit_applied" | "credit_refused", reason: string, entryId: number): TransferStep => ({ ...s, step, reason, entryId });
      switch (s.step) {
        case "credit_requested": {
          this.creditDecided.add(s.transferId);
          this.lastRecordedMs = decidedMs;
          // Cancelled first: refused, and the cancel's refusal was the answer.
          if (this.expired.has(s.transferId)) return decided({ rejection: "transfer_expired" }, stepRecord("transfer_in", "transfer_expired", 0, s.fromWalletId));
          // Decided at or after its deadline: too late, whatever else holds.
          const refusal = decidedMs >= s.expiresMs
            ? "transfer_expired"
            : !this.exists ? "destination_not_found" : this.balance + s.amountMinor > LIMITS.balanceMaxMinor ? "balance_would_exceed_max" : undefined;
          if (refusal) return decided({ rejection: refusal, steps: [reply("credit_refused", refusal, 0)] }, stepRecord("transfer_in", refusal, 0, s.fromWalletId));
          const entry = this.entry({ operationId: s.transferId, kind: "transfer_in", delta: s.amountMinor, eventTimeMs: s.eventTimeMs, description: s.description, counterparty: s.fromWalletId }, decidedMs);
          this.transferInCount++;
          return decided({ emits: [entry], steps: [reply("credit_applied", "", entry.entryId)] }, stepRecord("transfer_in", "", entry.entryId, s.fromWalletId));
        }
        case "cancel_requested": {
          // Decided already: the cancel changes nothing.
          if (this.creditDecided.has(s.transferId)) return decided({});
          this.expired.add(s.transferId);
          this.lastRecordedMs = decidedMs;
          return decided({ rejection: "transfer_expired", steps: [reply("credit_refused", "transfer_expired", 0)] }, stepRecord("transfer_in", "transfer_expired", 0, s.fromWalletId));
        }
        case "credit_applied":
        case "credit_refused": {
          const held = this.outgoing.get(s.transferId);
          // Not a transfer this wallet holds money for: a dead letter, nothing decided.
          if (!held) return { type: "terminal", code: "transfer_not_found" };
          if (held.amount !== s.amountMinor || held.to !== s.toWalletId) return { type: "terminal", code: "transfer_mismatch" };
          // (An answer to a transfer answered before has the same id: a repeat or a conflict above.)
          expect(this.pending.has(s.transferId)).toBe(true);
          this.pending.delete(s.transferId);
          this.held -= held.amount;
          this.timers.delete(transferTimerId(s.transferId));
          this.lastRecordedMs = decidedMs;
          const timers = [{ id: transferTimerId(s.transferId), dueMs: null }];
          const original = { createdMs: held.createdMs, reference: held.reference };
          if (s.step === "credit_refused") {
            this.rejectedCount++;
            this.lastRejection = s.reason;
            return decided({ rejection: s.reason, timers }, { ...stepRecord("transfer", s.reason, 0, s.toWalletId), ...original });
          }
          const entry = this.entry({ operationId: s.transferId, kind: "transfer_out", delta: -s.amountMinor, eventTimeMs: s.eventTimeMs, description: s.description, counterparty: s.toWalletId }, decidedMs);
          this.transferOutCount++;
          return decided({ emits: [entry], timers }, { ...stepRecord("transfer_out", "", entry.entryId, s.toWalletId), ...original });
        }
      }
    }

    const c = input.command;
    let reason = "";
    let amount = 0n;
    let delta = 0n;
    let newLimit = this.creditLimit;
    switch (c.kind) {
      case "deposit":
        amount = c.amountMinor;
        if (amount <= 0n) reason = "amount_must_be_positive";
        else if (amount > LIMITS.amountMaxMinor) reason = "amount_exceeds_max";
        // A trusted producer's impossible amount is not a decision: a dead letter, the id stays free.
        if (reason !== "" && input.source === "deposits") return { type: "terminal", code: reason };
        if (reason === "" && this.balance + amount > LIMITS.balanceMaxMinor) reason = "balance_would_exceed_max";
        delta = amount;
        break;
      case "withdrawal":
        amount = c.amountMinor;
        if (amount <= 0n) reason = "amount_must_be_positive";
        else if (amount > LIMITS.amountMaxMinor) reason = "amount_exceeds_max";
        else if (this.flagged) reason = "rejected_fraud";
        else if (amount > this.available) reason = "insufficient_funds";
        delta = -amount;
        break;
      case "credit_limit":
        amount = c.creditLimitMinor;
        if (amount < 0n) reason = "amount_must_be_positive";
        else if (amount > LIMITS.creditLimitMaxMinor) reason = "credit_limit_exceeds_max";
        // What is used (a debt, and money held) must stay covered.
        else if (this.balance + amount - this.held < 0n) reason = "credit_limit_below_usage";
        newLimit = amount;
        break;
      case "reversal": {
        const target = this.ops.get(c.reversalOf)?.record;
        // Nothing decided under that id yet: not a decision, the reversal's id stays free.
        if (target === undefined) return { type: "terminal", code: "operation_not_found" };
        if (target.kind !== "deposit" || target.reason !== "") reason = "operation_not_reversible";
        else {
          amount = target.amountMinor;
          delta = -target.amountMinor;
        }
        break;
      }
      case "transfer":
        amount = c.amountMinor;
        if (amount <= 0n) reason = "amount_must_be_positive";
        else if (amount > LIMITS.transferAmountMaxMinor) reason = "amount_exceeds_max";
        else if (c.toWalletId === c.walletId) reason = "same_wallet";
        else if (this.flagged) reason = "rejected_fraud";
        else if (amount > this.available) reason = "insufficient_funds";
        break;
      case "open":
        amount = c.initialAmountMinor;
        if (amount < 0n) reason = "amount_must_be_positive";
        else if (amount > LIMITS.amountMaxMinor) reason = "amount_exceeds_max";
        else if (this.balance + amount > LIMITS.balanceMaxMinor) reason = "balance_would_exceed_max";
        delta = amount;
        break;
    }
    this.lastRecordedMs = decidedMs;
    const record: OperationRecord = {
      kind: c.kind, amountMinor: amount, reason, createdMs: c.eventTimeMs, decidedMs, description: c.description, reference: c.reference, position,
      entryId: 0, balanceAfterMinor: this.balance, reversalOf: c.kind === "reversal" ? c.reversalOf : "", ...NO_TRANSFER,
      counterpartyWalletId: c.kind === "transfer" ? c.toWalletId : "",
    };
    if (reason !== "") {
      this.rejectedCount++;
      if (c.kind === "deposit") this.rejectedDepositCount++;
      this.lastRejection = reason;
      return decided({ rejection: reason }, record);
    }
    switch (c.kind) {
      case "credit_limit":
        this.creditLimit = newLimit;
        return decided({}, record);
      case "transfer": {
        // Held, not taken: the destination decides.
        // Pending from when it was asked for (never later than now), for the timeout.
        const expiresMs = Math.min(c.eventTimeMs, decidedMs) + LIMITS.transferTimeoutMs;
        const held: Outgoing = { amount, expiresMs, to: c.toWalletId, createdMs: c.eventTimeMs, description: c.description, reference: c.reference };
        this.held += amount;
        this.pending.set(c.operationId, held);
        this.outgoing.set(c.operationId, held);
        this.timers.set(transferTimerId(c.operationId), expiresMs);
        return decided(
          {
            steps: [{ step: "credit_requested", transferId: c.operationId, fromWalletId: WALLET, toWalletId: c.toWalletId, amountMinor: amount, eventTimeMs: c.eventTimeMs, expiresMs, description: c.description, reason: "", entryId: 0 }],
            timers: [{ id: transferTimerId(c.operationId), dueMs: expiresMs }],
          },
          { ...record, pending: true, expiresMs },
        );
      }
      case "open": {
        this.opened = true;
        this.userId = c.userId;
        this.initialAmount = amount;
        this.openedMs = decidedMs;
        const opened = c.userId === "" ? [] : [{ userId: c.userId, walletId: WALLET, openedMs: decidedMs }];
        if (amount === 0n) return decided({ opened }, record);
        const entry = this.entry({ operationId: c.operationId, kind: "open", delta, eventTimeMs: c.eventTimeMs, description: c.description, counterparty: "" }, decidedMs);
        return decided({ emits: [entry], opened }, { ...record, entryId: entry.entryId, balanceAfterMinor: this.balance });
      }
      default: {
        const entry = this.entry({ operationId: c.operationId, kind: c.kind, delta, eventTimeMs: c.eventTimeMs, description: c.description, counterparty: "" }, decidedMs);
        if (c.kind === "deposit") {
          this.depositCount++;
          this.lastDepositId = c.operationId;
          this.lastDepositTimeMs = c.eventTimeMs;
        } else if (c.kind === "withdrawal") this.withdrawalCount++;
        else this.reversalCount++;
        return decided({ emits: [entry] }, { ...record, entryId: entry.entryId, balanceAfterMinor: this.balance });
      }
    }
  }

  state(): WalletState {
    return {
      balanceMinor: this.balance, heldMinor: this.held, creditLimitMinor: this.creditLimit, flagged: this.flagged,
      depositCount: this.depositCount, withdrawalCount: this.withdrawalCount, reversalCount: this.reversalCount,
      rejectedCount: this.rejectedDepositCount, rejectedOperationCount: this.rejectedCount,
      lastDepositId: this.lastDepositId, lastDepositTimeMs: this.lastDepositTimeMs, lastRejectionCode: this.lastRejection,
      entryCount: this.history.length, lastRecordedMs: this.lastRecordedMs,
      transferOutCount: this.transferOutCount, transferInCount: this.transferInCount, pendingTransferCount: this.pending.size,
      opened: this.opened, userId: this.userId, initialAmountMinor: this.initialAmount, openedMs: this.openedMs,
    };
  }
}

/** The checks made after every step: state, available, every decision's record, the history, the timers. */
function compare(driver: Driver, model: Model): void {
  const s = driver.state;
  expect(s).toEqual(model.state());
  expect(s.balanceMinor + s.creditLimitMinor - s.heldMinor).toBe(model.available);
  // Every decided id keeps the record of its one decision.
  expect(driver.kept.size).toBe(model.ops.size);
  for (const [id, op] of model.ops) {
    expect(driver.kept.has(id)).toBe(true);
    expect(driver.kept.get(id)?.record).toEqual(op.record);
  }
  expect(driver.timers).toEqual(model.timers);
  // The history: entries 1..n without gaps, each balance_after the previous plus its
  // amount, and the balance their sum.
  expect(driver.entries).toEqual(model.history);
  let running = 0n;
  driver.entries.forEach((e, i) => {
    expect(e.entryId).toBe(i + 1);
    running += e.amountMinor;
    expect(e.balanceAfterMinor).toBe(running);
    if (i > 0) expect(e.recordedMs).toBeGreaterThanOrEqual(driver.entries[i - 1]!.recordedMs);
  });
  expect(running).toBe(s.balanceMinor);
}

// ---------------------------------------------------------------------------
// Random sequences: steps are intents, resolved against the model when they run, so
// amounts land on the edges of the state they meet (exactly available, one over...).
// ---------------------------------------------------------------------------

type AmountSpec = { at: "available" | "headroom"; delta: bigint } | { at: "value"; value: bigint };
type LimitSpec = { at: "usage"; delta: bigint } | { at: "value"; value: bigint };
type Target = { of: "deposit" | "sent"; pick: number } | { of: "unknown" } | { of: "next" };

type Step = { nowMs: number; eventTimeMs: number } & (
  | { t: "deposit"; source: Source; amount: AmountSpec }
  | { t: "withdrawal"; amount: AmountSpec }
  | { t: "credit_limit"; limit: LimitSpec }
  | { t: "reversal"; target: Target }
  | { t: "flag"; flagged: boolean }
  | { t: "repeat"; pick: number; otherSource: boolean }
  | { t: "conflict"; pick: number; change: "amount" | "kind" }
  /** A transfer out, to the other wallet or (refused) to itself. */
  | { t: "transfer"; amount: AmountSpec; self: boolean }
  | { t: "open"; forUser: boolean; initial: AmountSpec }
  /** The other wallet asks this one to credit a transfer: a new one, or one it knows. */
  | { t: "credit_in"; fresh: boolean; pick: number; amount: AmountSpec; expiresMs: number }
  | { t: "cancel_in"; fresh: boolean; pick: number; amount: AmountSpec; expiresMs: number }
  /** The other wallet answers one of this one's transfers, or forges an answer. */
  | { t: "outcome"; pick: number; unanswered: boolean; applied: boolean; reason: RefusalReason; forge: "none" | "amount" | "unknown" }
  /** One of this wallet's transfer timers fires, at its due time or at a stale one. */
  | { t: "fire"; pick: number; stale: boolean }
);

const delta = fc.constantFrom(-1n, 0n, 1n);
const fixedAmount = fc.oneof(
  fc.constantFrom(0n, -1n, 1n, LIMITS.amountMaxMinor, LIMITS.amountMaxMinor + 1n),
  fc.bigInt({ min: 1n, max: LIMITS.amountMaxMinor }),
);
const depositAmount: fc.Arbitrary<AmountSpec> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ at: fc.constant("value" as const), value: fixedAmount }) },
  // Right up to the balance's maximum, or one over it.
  { weight: 1, arbitrary: fc.record({ at: fc.constant("headroom" as const), delta }) },
);
const withdrawalAmount: fc.Arbitrary<AmountSpec> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ at: fc.constant("value" as const), value: fixedAmount }) },
  // Exactly what is available, one under, one over.
  { weight: 3, arbitrary: fc.record({ at: fc.constant("available" as const), delta }) },
);
const transferAmount: fc.Arbitrary<AmountSpec> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      at: fc.constant("value" as const),
      value: fc.oneof(fc.constantFrom(0n, -1n, 1n, LIMITS.transferAmountMaxMinor, LIMITS.transferAmountMaxMinor + 1n), fc.bigInt({ min: 1n, max: LIMITS.transferAmountMaxMinor })),
    }),
  },
  { weight: 3, arbitrary: fc.record({ at: fc.constant("available" as const), delta }) },
);
/** An amount the other wallet sends: one a producer may send (positive), up to this wallet's headroom or one over. */
const incomingAmount: fc.Arbitrary<AmountSpec> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ at: fc.constant("value" as const), value: fc.oneof(fc.constantFrom(1n, LIMITS.transferAmountMaxMinor), fc.bigInt({ min: 1n, max: LIMITS.transferAmountMaxMinor })) }) },
  { weight: 1, arbitrary: fc.record({ at: fc.constant("headroom" as const), delta }) },
);
const limitSpec: fc.Arbitrary<LimitSpec> = fc.oneof(
  // Lowered to exactly the usage (available becomes 0), or one under it.
  { weight: 2, arbitrary: fc.record({ at: fc.constant("usage" as const), delta }) },
  {
    weight: 2,
    arbitrary: fc.record({
      at: fc.constant("value" as const),
      value: fc.oneof(fc.constantFrom(0n, -1n, LIMITS.creditLimitMaxMinor, LIMITS.creditLimitMaxMinor + 1n), fc.bigInt({ min: 0n, max: LIMITS.creditLimitMaxMinor })),
    }),
  },
);
const target: fc.Arbitrary<Target> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ of: fc.constant("deposit" as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ of: fc.constant("sent" as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.constant({ of: "unknown" as const }) },
  { weight: 1, arbitrary: fc.constant({ of: "next" as const }) },
);
/** An incoming transfer's deadline: far ahead, or among the processor's clock times (0..1000), so that it may have passed. */
const deadline = fc.oneof({ weight: 2, arbitrary: fc.constant(1_000_000) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 1_000 }) });
const timing = { nowMs: fc.integer({ min: 0, max: 1_000 }), eventTimeMs: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 2_000_000 })) };

const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ ...timing, t: fc.constant("deposit" as const), source: fc.constantFrom<Source>("commands", "deposits"), amount: depositAmount }) },
  { weight: 4, arbitrary: fc.record({ ...timing, t: fc.constant("withdrawal" as const), amount: withdrawalAmount }) },
  { weight: 3, arbitrary: fc.record({ ...timing, t: fc.constant("credit_limit" as const), limit: limitSpec }) },
  { weight: 3, arbitrary: fc.record({ ...timing, t: fc.constant("reversal" as const), target }) },
  { weight: 1, arbitrary: fc.record({ ...timing, t: fc.constant("flag" as const), flagged: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ ...timing, t: fc.constant("repeat" as const), pick: fc.nat(), otherSource: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ ...timing, t: fc.constant("conflict" as const), pick: fc.nat(), change: fc.constantFrom<"amount" | "kind">("amount", "kind") }) },
  { weight: 4, arbitrary: fc.record({ ...timing, t: fc.constant("transfer" as const), amount: transferAmount, self: fc.constant(false) }) },
  { weight: 1, arbitrary: fc.record({ ...timing, t: fc.constant("transfer" as const), amount: transferAmount, self: fc.constant(true) }) },
  { weight: 1, arbitrary: fc.record({ ...timing, t: fc.constant("open" as const), forUser: fc.boolean(), initial: depositAmount }) },
  { weight: 3, arbitrary: fc.record({ ...timing, t: fc.constant("credit_in" as const), fresh: fc.boolean(), pick: fc.nat(), amount: incomingAmount, expiresMs: deadline }) },
  { weight: 2, arbitrary: fc.record({ ...timing, t: fc.constant("cancel_in" as const), fresh: fc.boolean(), pick: fc.nat(), amount: incomingAmount, expiresMs: deadline }) },
  {
    weight: 4,
    arbitrary: fc.record({
      ...timing,
      t: fc.constant("outcome" as const),
      pick: fc.nat(),
      unanswered: fc.constantFrom(true, true, true, false),
      applied: fc.boolean(),
      reason: fc.constantFrom(...CREDIT_REFUSAL_REASONS),
      forge: fc.constantFrom<"none" | "amount" | "unknown">("none", "none", "none", "none", "amount", "unknown"),
    }),
  },
  { weight: 2, arbitrary: fc.record({ ...timing, t: fc.constant("fire" as const), pick: fc.nat(), stale: fc.boolean() }) },
);

/** The commands sent so far, to repeat or reverse, and the other wallet's transfers to this one. */
interface Sent {
  commands: { source: Source; command: WalletCommand }[];
  incoming: { transferId: string; amount: bigint; expiresMs: number }[];
}

/** Turns a step into an input, against the model's state at that point. */
function resolve(s: Step, index: number, model: Model, sent: Sent): WalletInput | undefined {
  const base = { operationId: `op${index}`, walletId: WALLET, eventTimeMs: s.eventTimeMs, description: `step ${index}`, reference: index % 3 === 0 ? `ref${index}` : "" };
  const amountOf = (a: AmountSpec) =>
    a.at === "value" ? a.value : a.at === "available" ? model.available + a.delta : LIMITS.balanceMaxMinor - model.balance + a.delta;
  const incoming = (fresh: boolean, pick: number, amount: AmountSpec, expiresMs: number) => {
    if (!fresh && sent.incoming.length > 0) return sent.incoming[pick % sent.incoming.length]!;
    // A producer may only send positive amounts (the topic's codec refuses others).
    const positive = amountOf(amount) > 0n ? amountOf(amount) : 1n;
    const next = { transferId: `in${index}`, amount: positive, expiresMs };
    sent.incoming.push(next);
    return next;
  };
  const inStep = (step: "credit_requested" | "cancel_requested", t: { transferId: string; amount: bigint; expiresMs: number }): WalletInput => ({
    type: "transfer",
    step: { step, transferId: t.transferId, fromWalletId: OTHER, toWalletId: WALLET, amountMinor: t.amount, eventTimeMs: 77, expiresMs: t.expiresMs, description: `incoming ${t.transferId}`, reason: "", entryId: 0 },
  });
  const transfersSent = () => sent.commands.flatMap((x) => (x.command.kind === "transfer" ? [x.command] : []));
  switch (s.t) {
    case "deposit":
      return { type: "command", source: s.source, command: { ...base, kind: "deposit", amountMinor: amountOf(s.amount) } };
    case "withdrawal":
      return { type: "command", source: "commands", command: { ...base, kind: "withdrawal", amountMinor: amountOf(s.amount) } };
    case "credit_limit": {
      const limit = s.limit.at === "value" ? s.limit.value : -model.balance + model.held + s.limit.delta;
      return { type: "command", source: "commands", command: { ...base, kind: "credit_limit", creditLimitMinor: limit } };
    }
    case "reversal": {
      let of: string;
      const t = s.target;
      if (t.of === "unknown") of = `ghost${index}`;
      else if (t.of === "next") of = `op${index + 1}`; // a deposit not decided yet, maybe never
      else {
        const pool = t.of === "deposit" ? sent.commands.filter((x) => x.command.kind === "deposit") : sent.commands;
        if (pool.length === 0) return undefined;
        of = pool[t.pick % pool.length]!.command.operationId;
      }
      return { type: "command", source: "commands", command: { ...base, operationId: reversalId(of), kind: "reversal", reversalOf: of } };
    }
    case "flag":
      return { type: "flag", change: { eventId: `flag${index}`, walletId: WALLET, flagged: s.flagged, reason: "manual", eventTimeMs: s.eventTimeMs } };
    case "repeat": {
      if (sent.commands.length === 0) return undefined;
      const again = sent.commands[s.pick % sent.commands.length]!;
      // A deposit counts once whichever topic it comes on.
      const source = again.command.kind === "deposit" && s.otherSource ? (again.source === "commands" ? "deposits" : "commands") : again.source;
      return { type: "command", source, command: again.command };
    }
    case "conflict": {
      if (sent.commands.length === 0) return undefined;
      const { command: c, source } = sent.commands[s.pick % sent.commands.length]!;
      const same = { operationId: c.operationId, walletId: WALLET, eventTimeMs: c.eventTimeMs, description: c.description, reference: c.reference };
      if (s.change === "kind" || c.kind === "reversal") {
        const amountMinor = c.kind === "reversal" || c.kind === "credit_limit" ? 7n : c.kind === "open" ? c.initialAmountMinor : c.amountMinor;
        return { type: "command", source: "commands", command: { ...same, kind: c.kind === "withdrawal" ? "deposit" : "withdrawal", amountMinor } };
      }
      switch (c.kind) {
        case "credit_limit":
          return { type: "command", source: "commands", command: { ...same, kind: "credit_limit", creditLimitMinor: c.creditLimitMinor + 1n } };
        case "open":
          return { type: "command", source: "commands", command: { ...same, kind: "open", userId: c.userId, initialAmountMinor: c.initialAmountMinor + 1n } };
        case "transfer":
          return { type: "command", source: "commands", command: { ...same, kind: "transfer", toWalletId: c.toWalletId, amountMinor: c.amountMinor + 1n } };
        default:
          return { type: "command", source, command: { ...same, kind: c.kind, amountMinor: c.amountMinor + 1n } };
      }
    }
    case "transfer":
      return { type: "command", source: "commands", command: { ...base, kind: "transfer", toWalletId: s.self ? WALLET : OTHER, amountMinor: amountOf(s.amount) } };
    case "open":
      // A wallet's opening has one id, whenever it comes.
      return { type: "command", source: "commands", command: { ...base, operationId: "open", kind: "open", userId: s.forUser ? "u1" : "", initialAmountMinor: amountOf(s.initial) } };
    case "credit_in":
      return inStep("credit_requested", incoming(s.fresh, s.pick, s.amount, s.expiresMs));
    case "cancel_in":
      return inStep("cancel_requested", incoming(s.fresh, s.pick, s.amount, s.expiresMs));
    case "outcome": {
      // Mostly to a transfer still waiting; else to any (refused at the source, answered already).
      const waiting = transfersSent().filter((c) => model.pending.has(c.operationId));
      const pool = s.unanswered && waiting.length > 0 ? waiting : transfersSent();
      if (pool.length === 0 && s.forge !== "unknown") return undefined;
      const t = s.forge === "unknown" ? { operationId: `ghost${index}`, toWalletId: OTHER, amountMinor: 5n, eventTimeMs: 0, description: "" } : pool[s.pick % pool.length]!;
      const amountMinor = s.forge === "amount" ? t.amountMinor + 1n : t.amountMinor;
      return {
        type: "transfer",
        step: {
          step: s.applied ? "credit_applied" : "credit_refused", transferId: t.operationId, fromWalletId: WALLET, toWalletId: t.toWalletId, amountMinor,
          eventTimeMs: t.eventTimeMs, expiresMs: model.ops.get(t.operationId)?.record?.expiresMs ?? 5_000, description: t.description, reason: s.applied ? "" : s.reason, entryId: s.applied ? 9 : 0,
        },
      };
    }
    case "fire": {
      // Timers of transfers the wallet accepted, at the due time it set or a stale one.
      const pool = transfersSent().filter((c) => model.ops.get(c.operationId)?.record?.pending);
      if (pool.length === 0) return undefined;
      const c = pool[s.pick % pool.length]!;
      const due = model.ops.get(c.operationId)!.record!.expiresMs!;
      return { type: "timer", fired: { walletId: WALLET, timerId: transferTimerId(c.operationId), dueMs: s.stale ? due - 1 : due } };
    }
  }
}

/** Edges the generator must reach, counted over the whole property. */
const reached = {
  edges: new Map<string, number>(),
  repeats: 0,
  conflicts: 0,
  terminals: 0,
  skipped: 0,
  rejections: new Set<string>(),
};
const edge = (name: string) => reached.edges.set(name, (reached.edges.get(name) ?? 0) + 1);

interface Before {
  available: bigint;
  balance: bigint;
  creditLimit: bigint;
  held: bigint;
}

function note(input: WalletInput, model: Model, before: Before, seen: Observed): void {
  if (seen.type === "repeat") reached.repeats++;
  if (seen.type === "conflict") reached.conflicts++;
  if (seen.type === "skipped") reached.skipped++;
  if (seen.type === "terminal") {
    reached.terminals++;
    if (input.type === "transfer") edge(`forged outcome: ${seen.code}`);
  }
  if (seen.type !== "decided") return;
  if (seen.rejection) reached.rejections.add(seen.rejection);
  if (input.type === "timer") edge(seen.steps.length > 0 ? "timer sends a cancel" : "timer of an answered transfer");
  if (input.type === "transfer") {
    const s = input.step;
    if (s.step === "credit_requested") {
      edge(seen.rejection ? `credit refused: ${seen.rejection}` : "credit applied");
      if (seen.rejection === "transfer_expired") edge(seen.steps.length === 0 ? "credit after its cancel" : "credit past its deadline");
    }
    if (s.step === "cancel_requested") edge(seen.rejection ? "cancel before the credit" : "cancel after the credit, ignored");
    if (s.step === "credit_applied") edge("transfer settled");
    if (s.step === "credit_refused") edge(`transfer released: ${s.reason}`);
    return;
  }
  if (input.type !== "command") return;
  const c = input.command;
  const amount = c.kind === "withdrawal" || c.kind === "transfer" ? c.amountMinor : undefined;
  if (amount !== undefined && !seen.rejection && model.available === 0n && before.available > 0n) edge(`${c.kind} of exactly available`);
  if (amount !== undefined && seen.rejection === "insufficient_funds" && amount === before.available + 1n) edge(`${c.kind} one over available`);
  // Refused because of money held, though the balance and credit limit would cover it.
  if (amount !== undefined && seen.rejection === "insufficient_funds" && before.held > 0n && amount <= before.balance + before.creditLimit) edge(`${c.kind} refused for money held`);
  if (c.kind === "credit_limit" && !seen.rejection && before.balance - before.held < 0n && model.available === 0n) {
    edge("limit down to exactly the usage");
    if (c.creditLimitMinor < before.creditLimit) edge("limit lowered to exactly the usage");
    if (before.held > 0n) edge("limit down to exactly the usage, money held");
  }
  if (c.kind === "credit_limit" && seen.rejection === "credit_limit_below_usage" && before.held > 0n && before.balance + c.creditLimitMinor >= 0n) edge("limit refused for money held");
  if (c.kind === "reversal" && !seen.rejection && model.available < 0n) edge("reversal into debt");
  // Any debit (a withdrawal, a transfer) is refused while a reversal's debt lasts.
  if (amount !== undefined && seen.rejection === "insufficient_funds" && before.available < 0n) edge("debit refused in debt");
  if (c.kind === "deposit" && !seen.rejection && model.balance === LIMITS.balanceMaxMinor) edge("deposit to exactly the balance max");
  if (c.kind === "open" && !seen.rejection) edge(seen.emits.length > 0 ? "opened with money" : "opened empty");
  if (c.kind === "open" && seen.opened.length > 0) edge("opened for a user");
}

describe("wallet actor against a model", () => {
  test("every decision, the balance, held, available, the timers and the history match the model after every step", () => {
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 70, size: "max" }), (steps) => {
        const driver = new Driver();
        const model = new Model();
        const sent: Sent = { commands: [], incoming: [] };
        steps.forEach((s, index) => {
          const input = resolve(s, index, model, sent);
          if (!input) return;
          const before = { available: model.available, balance: model.balance, creditLimit: model.creditLimit, held: model.held };
          const position = `commands:0:${index}`;
          const expected = model.apply(input, s.nowMs, position);
          const seen = driver.send(input, s.nowMs, position);
          expect(seen).toEqual(expected);
          note(input, model, before, seen);
          if (input.type === "command") sent.commands.push({ source: input.source, command: input.command });
          compare(driver, model);
        });
      }),
      { numRuns: 1_000 },
    );
    // The generator does reach the edges it is meant to (a test that never meets them
    // would pass for nothing).
    const atLeast: [string, number][] = [
      ["withdrawal of exactly available", 100],
      ["withdrawal one over available", 200],
      ["transfer of exactly available", 60],
      ["transfer one over available", 150],
      ["withdrawal refused for money held", 40],
      ["transfer refused for money held", 40],
      ["limit down to exactly the usage", 15],
      ["limit lowered to exactly the usage", 5],
      ["limit down to exactly the usage, money held", 8],
      ["limit refused for money held", 10],
      ["reversal into debt", 40],
      ["debit refused in debt", 15],
      ["deposit to exactly the balance max", 8],
      ["opened with money", 100],
      ["opened empty", 15],
      ["opened for a user", 60],
      ["credit applied", 300],
      ["credit refused: destination_not_found", 200],
      ["credit refused: balance_would_exceed_max", 40],
      ["credit after its cancel", 150],
      ["credit past its deadline", 200],
      ["cancel before the credit", 500],
      ["cancel after the credit, ignored", 150],
      ["transfer settled", 80],
      ["transfer released: destination_not_found", 25],
      ["transfer released: balance_would_exceed_max", 25],
      ["transfer released: transfer_expired", 25],
      ["timer sends a cancel", 40],
      ["forged outcome: transfer_not_found", 1_000],
      ["forged outcome: transfer_mismatch", 40],
    ];
    const short = atLeast.filter(([name, n]) => (reached.edges.get(name) ?? 0) <= n).map(([name, n]) => `${name}: ${reached.edges.get(name) ?? 0} <= ${n}`);
    expect(short).toEqual([]);
    expect(reached.repeats).toBeGreaterThan(1_000);
    expect(reached.conflicts).toBeGreaterThan(400);
    expect(reached.terminals).toBeGreaterThan(500);
    expect(reached.skipped).toBeGreaterThan(100);
    expect([...reached.rejections].sort()).toEqual([...REJECTION_REASONS].sort());
  });
});

// ---------------------------------------------------------------------------
// Worked examples.
// ---------------------------------------------------------------------------

let counter = 0;
const cmd = (command: Partial<WalletCommand> & Pick<WalletCommand, "kind">, source: Source = "commands"): WalletInput =>
  ({ type: "command", source, command: { operationId: `x${++counter}`, walletId: WALLET, eventTimeMs: 1_000, description: "", reference: "", ...command } as WalletCommand });
const deposit = (amountMinor: bigint, operationId?: string, source: Source = "commands") => cmd({ kind: "deposit", amountMinor, ...(operationId ? { operationId } : {}) }, source);
const withdrawal = (amountMinor: bigint) => cmd({ kind: "withdrawal", amountMinor });
const creditLimit = (creditLimitMinor: bigint) => cmd({ kind: "credit_limit", creditLimitMinor });
const reversal = (of: string) => cmd({ kind: "reversal", operationId: reversalId(of), reversalOf: of });
const flag = (flagged: boolean): WalletInput => ({ type: "flag", change: { eventId: `f${++counter}`, walletId: WALLET, flagged, reason: "manual", eventTimeMs: 0 } });
const transfer = (amountMinor: bigint, operationId = `x${++counter}`, toWalletId = OTHER) => cmd({ kind: "transfer", amountMinor, toWalletId, operationId });
const open = (initialAmountMinor: bigint, userId = "") => cmd({ kind: "open", operationId: "open", userId, initialAmountMinor });
/** A step of a transfer, as the other wallet (or the runtime's `transfers` topic) hands it to this one. */
const transferStep = (kind: TransferStep["step"], transferId: string, amountMinor: bigint, reason = "", expiresMs = 1_000_000): WalletInput => {
  const outcome = kind === "credit_applied" || kind === "credit_refused";
  return {
    type: "transfer",
    step: { step: kind, transferId, fromWalletId: outcome ? WALLET : OTHER, toWalletId: outcome ? OTHER : WALLET, amountMinor, eventTimeMs: 1_000, expiresMs, description: "", reason, entryId: kind === "credit_applied" ? 4 : 0 },
  };
};

/**
 * Runs `setup`, every input of which must be settled (or a flag, or a cancel: a
 * destination refuses a cancel it has not seen a credit for), then returns the driver.
 */
function after(setup: WalletInput[]): Driver {
  const driver = new Driver();
  for (const input of setup) {
    const seen = driver.send(input, 10);
    if (seen.type === "decided") expect(seen.rejection).toBe(input.type === "transfer" && input.step.step === "cancel_requested" ? "transfer_expired" : undefined);
    else expect(seen.type).toBe("flag");
  }
  return driver;
}

interface Row {
  name: string;
  setup: WalletInput[];
  input: WalletInput;
  reason: (typeof REJECTION_REASONS)[number];
}

const ROWS: Row[] = [
  { name: "a withdrawal of 0", setup: [deposit(100n)], input: withdrawal(0n), reason: "amount_must_be_positive" },
  { name: "a negative withdrawal", setup: [deposit(100n)], input: withdrawal(-1n), reason: "amount_must_be_positive" },
  { name: "a deposit of 0 on commands", setup: [], input: deposit(0n), reason: "amount_must_be_positive" },
  { name: "a negative credit limit", setup: [], input: creditLimit(-1n), reason: "amount_must_be_positive" },
  { name: "a transfer of 0", setup: [deposit(100n)], input: transfer(0n), reason: "amount_must_be_positive" },
  { name: "a negative transfer", setup: [deposit(100n)], input: transfer(-1n), reason: "amount_must_be_positive" },
  { name: "an opening with a negative initial amount", setup: [], input: open(-1n), reason: "amount_must_be_positive" },
  { name: "a withdrawal over the amount max", setup: [deposit(1_000n), deposit(1_000n)], input: withdrawal(1_001n), reason: "amount_exceeds_max" },
  { name: "a deposit over the amount max on commands", setup: [], input: deposit(1_001n), reason: "amount_exceeds_max" },
  { name: "a transfer one over the transfer max (within the deposit max)", setup: [deposit(1_000n)], input: transfer(801n), reason: "amount_exceeds_max" },
  { name: "an opening with an initial amount over the amount max", setup: [], input: open(1_001n, "u1"), reason: "amount_exceeds_max" },
  { name: "a deposit one over the balance max", setup: [deposit(1_000n), deposit(1_000n), deposit(999n)], input: deposit(2n), reason: "balance_would_exceed_max" },
  { name: "a deposit from `deposits` one over the balance max", setup: [deposit(1_000n), deposit(1_000n), deposit(1_000n)], input: deposit(1n, undefined, "deposits"), reason: "balance_would_exceed_max" },
  { name: "an opening one over the balance max", setup: [deposit(1_000n), deposit(1_000n), deposit(1_000n)], input: open(1n), reason: "balance_would_exceed_max" },
  { name: "a credit one over the balance max, at the destination", setup: [deposit(1_000n), deposit(1_000n), deposit(999n)], input: transferStep("credit_requested", "t1", 2n), reason: "balance_would_exceed_max" },
  { name: "the destination's balance_would_exceed_max, at the source", setup: [deposit(100n), transfer(60n, "t1")], input: transferStep("credit_refused", "t1", 60n, "balance_would_exceed_max"), reason: "balance_would_exceed_max" },
  { name: "a withdrawal one over the balance", setup: [deposit(100n)], input: withdrawal(101n), reason: "insufficient_funds" },
  { name: "a withdrawal one over balance plus credit limit", setup: [deposit(100n), creditLimit(50n)], input: withdrawal(151n), reason: "insufficient_funds" },
  { name: "a withdrawal from an empty wallet", setup: [], input: withdrawal(1n), reason: "insufficient_funds" },
  { name: "a withdrawal one over what a hold leaves", setup: [deposit(100n), transfer(60n)], input: withdrawal(41n), reason: "insufficient_funds" },
  { name: "a transfer one over what a hold leaves", setup: [deposit(100n), transfer(60n)], input: transfer(41n), reason: "insufficient_funds" },
  { name: "a transfer one over balance plus credit limit", setup: [deposit(100n), creditLimit(50n)], input: transfer(151n), reason: "insufficient_funds" },
  { name: "a withdrawal from a flagged wallet, within funds", setup: [deposit(100n), flag(true)], input: withdrawal(50n), reason: "rejected_fraud" },
  { name: "a withdrawal from a flagged wallet, over funds", setup: [deposit(100n), flag(true)], input: withdrawal(500n), reason: "rejected_fraud" },
  { name: "a transfer from a flagged wallet, within funds", setup: [deposit(100n), flag(true)], input: transfer(50n), reason: "rejected_fraud" },
  { name: "a credit limit one over the max", setup: [], input: creditLimit(1_501n), reason: "credit_limit_exceeds_max" },
  { name: "a credit limit one under the usage", setup: [creditLimit(500n), withdrawal(300n)], input: creditLimit(299n), reason: "credit_limit_below_usage" },
  { name: "a credit limit of 0 while in debt", setup: [creditLimit(500n), withdrawal(1n)], input: creditLimit(0n), reason: "credit_limit_below_usage" },
  { name: "a credit limit one under what a hold uses", setup: [creditLimit(100n), transfer(100n)], input: creditLimit(99n), reason: "credit_limit_below_usage" },
  { name: "reversing a withdrawal", setup: [deposit(100n, "dep"), cmd({ kind: "withdrawal", amountMinor: 10n, operationId: "wd" })], input: reversal("wd"), reason: "operation_not_reversible" },
  { name: "reversing a credit limit change", setup: [cmd({ kind: "credit_limit", creditLimitMinor: 10n, operationId: "cl" })], input: reversal("cl"), reason: "operation_not_reversible" },
  { name: "reversing a reversal", setup: [deposit(100n, "d1"), reversal("d1")], input: reversal(reversalId("d1")), reason: "operation_not_reversible" },
  { name: "reversing a transfer", setup: [deposit(100n), transfer(10n, "t1")], input: reversal("t1"), reason: "operation_not_reversible" },
  { name: "reversing an opening's initial amount", setup: [open(100n)], input: reversal("open"), reason: "operation_not_reversible" },
  { name: "a transfer to the same wallet", setup: [deposit(100n)], input: transfer(10n, undefined, WALLET), reason: "same_wallet" },
  { name: "a transfer to the same wallet, from a flagged wallet over funds", setup: [flag(true)], input: transfer(10n, undefined, WALLET), reason: "same_wallet" },
  { name: "a credit to a wallet never opened nor paid", setup: [], input: transferStep("credit_requested", "t1", 10n), reason: "destination_not_found" },
  { name: "a credit to a wallet that only has a flag and a credit limit", setup: [flag(false), creditLimit(100n)], input: transferStep("credit_requested", "t1", 10n), reason: "destination_not_found" },
  { name: "the destination's destination_not_found, at the source", setup: [deposit(100n), transfer(60n, "t1")], input: transferStep("credit_refused", "t1", 60n, "destination_not_found"), reason: "destination_not_found" },
  { name: "a cancel at the destination before the credit", setup: [deposit(100n)], input: transferStep("cancel_requested", "t1", 10n), reason: "transfer_expired" },
  { name: "a credit at the destination after its cancel", setup: [deposit(100n), transferStep("cancel_requested", "t1", 10n)], input: transferStep("credit_requested", "t1", 10n), reason: "transfer_expired" },
  { name: "a credit decided at its deadline", setup: [deposit(100n)], input: transferStep("credit_requested", "t1", 10n, "", 20), reason: "transfer_expired" },
  { name: "a credit to a wallet not found, decided past its deadline", setup: [], input: transferStep("credit_requested", "t1", 10n, "", 19), reason: "transfer_expired" },
  { name: "the destination's transfer_expired, at the source", setup: [deposit(100n), transfer(60n, "t1")], input: transferStep("credit_refused", "t1", 60n, "transfer_expired"), reason: "transfer_expired" },
];

/** What a refused input says it was about: its amount, or a reversal's 0, or a credit limit. */
function amountOf(input: WalletInput): bigint {
  if (input.type === "transfer") return input.step.amountMinor;
  if (input.type !== "command") throw new Error("not an operation");
  const c = input.command;
  switch (c.kind) {
    case "reversal":
      return 0n;
    case "credit_limit":
      return c.creditLimitMinor;
    case "open":
      return c.initialAmountMinor;
    default:
      return c.amountMinor;
  }
}

describe("wallet actor: one row per rejection reason", () => {
  test("the table covers every reason the actor can give", () => {
    expect([...new Set(ROWS.map((r) => r.reason))].sort()).toEqual([...REJECTION_REASONS].sort());
  });

  for (const row of ROWS) {
    test(`${row.name}: ${row.reason}`, () => {
      const driver = after(row.setup);
      const before = driver.state;
      const seen = driver.send(row.input, 20);
      expect(seen.type).toBe("decided");
      if (seen.type !== "decided") return;
      expect(seen.rejection).toBe(row.reason);
      // Nothing is written and nothing announced, whoever refused.
      expect(seen.emits).toEqual([]);
      expect(seen.opened).toEqual([]);
      expect(seen.record?.reason).toBe(row.reason);
      expect(seen.record?.entryId).toBe(0);
      expect(seen.record?.balanceAfterMinor).toBe(before.balanceMinor);
      expect(seen.record?.amountMinor).toBe(amountOf(row.input));
      expect(seen.record?.pending).toBe(false);
      expect(seen.record?.expiresMs).toBeNull();
      const input = row.input;
      if (input.type === "command") {
        // The wallet's own operation, refused: nothing held, sent, or timed.
        expect(seen.steps).toEqual([]);
        expect(seen.timers).toEqual([]);
        expect(seen.record?.counterpartyWalletId).toBe(input.command.kind === "transfer" ? input.command.toWalletId : "");
        expect(driver.state).toEqual({
          ...before,
          rejectedOperationCount: before.rejectedOperationCount + 1,
          rejectedCount: before.rejectedCount + (input.command.kind === "deposit" ? 1 : 0),
          lastRejectionCode: row.reason,
          lastRecordedMs: 20,
        });
        return;
      }
      if (input.type !== "transfer") throw new Error("a row is an operation or a transfer step");
      const s = input.step;
      expect(seen.record?.operationId).toBe(s.transferId);
      if (s.step === "credit_refused") {
        // At the source, the destination's refusal is the transfer's: its hold is released, its timer cleared.
        expect(seen.record?.kind).toBe("transfer");
        expect(seen.record?.counterpartyWalletId).toBe(OTHER);
        expect(seen.steps).toEqual([]);
        expect(seen.timers).toEqual([{ id: transferTimerId(s.transferId), dueMs: null }]);
        expect(driver.state).toEqual({
          ...before,
          heldMinor: before.heldMinor - s.amountMinor,
          pendingTransferCount: before.pendingTransferCount - 1,
          rejectedOperationCount: before.rejectedOperationCount + 1,
          lastRejectionCode: row.reason,
          lastRecordedMs: 20,
        });
        return;
      }
      // At the destination: the refusal goes back to the source (unless a cancel's refusal did already),
      // and the source counts it; here only the time moves.
      expect(seen.record?.kind).toBe("transfer_in");
      expect(seen.record?.counterpartyWalletId).toBe(OTHER);
      const cancelledFirst = s.step === "credit_requested" && row.setup.some((i) => i.type === "transfer" && i.step.step === "cancel_requested");
      expect(seen.steps).toEqual(cancelledFirst ? [] : [{ ...s, step: "credit_refused", reason: row.reason, entryId: 0 }]);
      expect(seen.timers).toEqual([]);
      expect(driver.state).toEqual({ ...before, lastRecordedMs: 20 });
    });
  }

  test("a rejected deposit cannot be reversed", () => {
    const driver = after([deposit(3_000n - 1n - 2_000n), deposit(1_000n), deposit(1_000n)]);
    expect(driver.send(deposit(2n, "big"), 20)).toMatchObject({ type: "decided", rejection: "balance_would_exceed_max" });
    expect(driver.send(reversal("big"), 20)).toMatchObject({ type: "decided", rejection: "operation_not_reversible" });
    expect(driver.state.balanceMinor).toBe(2_999n);
  });
});

describe("wallet actor: deposits with amounts no producer may send", () => {
  for (const [amountMinor, code] of [[0n, "amount_must_be_positive"], [-5n, "amount_must_be_positive"], [1_001n, "amount_exceeds_max"]] as const) {
    test(`${amountMinor} from \`deposits\` is terminal (a dead letter), from \`commands\` a rejection: ${code}`, () => {
      const driver = after([deposit(100n)]);
      const before = driver.state;
      expect(driver.send(deposit(amountMinor, "bad", "deposits"), 20)).toEqual({ type: "terminal", code });
      // Nothing decided: the state is as it was and the id stays free.
      expect(driver.state).toEqual(before);
      expect(driver.kept.has("bad")).toBe(false);
      const seen = driver.send(deposit(amountMinor, "bad", "commands"), 20);
      expect(seen).toMatchObject({ type: "decided", rejection: code, emits: [] });
      expect(driver.state).toEqual({ ...before, rejectedCount: 1, rejectedOperationCount: 1, lastRejectionCode: code, lastRecordedMs: 20 });
      expect(driver.kept.get("bad")?.record?.reason).toBe(code);
    });
  }

  test("a terminal deposit's id stays free: a valid deposit may take it", () => {
    const driver = after([]);
    expect(driver.send(deposit(0n, "d", "deposits"), 5)).toEqual({ type: "terminal", code: "amount_must_be_positive" });
    expect(driver.send(deposit(40n, "d", "deposits"), 6)).toMatchObject({ type: "decided", rejection: undefined });
    expect(driver.state.balanceMinor).toBe(40n);
  });
});

describe("wallet actor: reversals and debt, worked through", () => {
  test("a reversal debits into debt, every debit is then refused, and reversing twice is one operation", () => {
    const driver = after([]);
    const d = driver.send(deposit(100n, "d1"), 1);
    expect(d).toMatchObject({ type: "decided", rejection: undefined, emits: [{ entryId: 1, amountMinor: 100n, balanceAfterMinor: 100n }] });
    expect(driver.send(withdrawal(80n), 2)).toMatchObject({ emits: [{ entryId: 2, amountMinor: -80n, balanceAfterMinor: 20n }] });
    const r = driver.send(reversal("d1"), 3);
    expect(r).toMatchObject({ type: "decided", rejection: undefined, emits: [{ entryId: 3, operationId: "reversal:d1", kind: "reversal", amountMinor: -100n, balanceAfterMinor: -80n }] });
    expect(r.type === "decided" && r.record).toMatchObject({ kind: "reversal", amountMinor: 100n, reason: "", entryId: 3, balanceAfterMinor: -80n, reversalOf: "d1" });
    // The deposit keeps its own status.
    expect(driver.kept.get("d1")?.record).toMatchObject({ kind: "deposit", reason: "", entryId: 1 });
    expect(driver.state.balanceMinor).toBe(-80n);
    expect(driver.send(withdrawal(1n), 4)).toMatchObject({ rejection: "insufficient_funds" });
    expect(driver.send(creditLimit(79n), 5)).toMatchObject({ rejection: "credit_limit_below_usage" });
    // Reversing again is the same operation: the runtime skips it.
    expect(driver.send(reversal("d1"), 6)).toEqual({ type: "repeat" });
    expect(driver.state.balanceMinor).toBe(-80n);
    // A limit of exactly the debt brings available to 0, and still nothing can go out.
    expect(driver.send(creditLimit(80n), 7)).toMatchObject({ rejection: undefined, emits: [] });
    expect(driver.state.balanceMinor + driver.state.creditLimitMinor).toBe(0n);
    expect(driver.send(withdrawal(1n), 8)).toMatchObject({ rejection: "insufficient_funds" });
    // A deposit pays the debt back down.
    expect(driver.send(deposit(30n), 9)).toMatchObject({ rejection: undefined, emits: [{ entryId: 4, balanceAfterMinor: -50n }] });
    expect(driver.send(withdrawal(30n), 10)).toMatchObject({ rejection: undefined, emits: [{ entryId: 5, balanceAfterMinor: -80n }] });
    expect(driver.entries.map((e) => e.balanceAfterMinor)).toEqual([100n, 20n, -80n, -50n, -80n]);
  });

  test("a reversal of a deposit not decided yet is a dead letter, and the deposit can still be reversed once it settles", () => {
    const driver = after([]);
    expect(driver.send(reversal("late"), 1)).toEqual({ type: "terminal", code: "operation_not_found" });
    expect(driver.kept.has(reversalId("late"))).toBe(false);
    expect(driver.send(deposit(50n, "late"), 2)).toMatchObject({ rejection: undefined });
    expect(driver.send(reversal("late"), 3)).toMatchObject({ type: "decided", rejection: undefined, emits: [{ amountMinor: -50n, balanceAfterMinor: 0n }] });
    expect(driver.state.balanceMinor).toBe(0n);
  });

  test("a flag blocks withdrawals only: deposits, credit limits and reversals still go through", () => {
    const driver = after([deposit(100n, "d"), flag(true)]);
    expect(driver.send(deposit(10n), 1)).toMatchObject({ rejection: undefined });
    expect(driver.send(creditLimit(5n), 2)).toMatchObject({ rejection: undefined });
    expect(driver.send(reversal("d"), 3)).toMatchObject({ rejection: undefined, emits: [{ amountMinor: -100n, balanceAfterMinor: 10n }] });
    expect(driver.send(withdrawal(1n), 4)).toMatchObject({ rejection: "rejected_fraud" });
    driver.send(flag(false), 5);
    expect(driver.send(withdrawal(15n), 6)).toMatchObject({ rejection: undefined, emits: [{ balanceAfterMinor: -5n }] });
    expect(driver.state.balanceMinor + driver.state.creditLimitMinor).toBe(0n);
  });
});

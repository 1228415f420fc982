// The wallet actor (the `balance` group) driven directly, without the runtime: a
// model-based property over random operation sequences, and a table of every rule
// that refuses an operation. The driver plays the runtime's part (an id decided once
// is never decided again; a repeat with other content is a dead letter, not a
// decision) and the model is written from the operations' rules, not from the actor.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { isTerminal, type ActorContext, type Outcome } from "../../actors/types.js";
import {
  REJECTION_REASONS,
  walletActor,
  type LedgerEntry,
  type OperationKind,
  type OperationRecord,
  type WalletCommand,
  type WalletInput,
  type WalletLimits,
  type WalletState,
} from "../../actors/wallet.js";
import { commandFingerprint, reversalId } from "../../src/topics/commands.js";

// Small limits, so that every rule's edge is within reach of a short sequence.
const LIMITS: WalletLimits = { amountMaxMinor: 1_000n, balanceMaxMinor: 3_000n, creditLimitMaxMinor: 1_500n };
const WALLET = "w";

type Source = "commands" | "deposits";

// ---------------------------------------------------------------------------
// The driver: the actor plus what the runtime would do around it.
// ---------------------------------------------------------------------------

/** What became of one input, as the runtime would see it. */
type Observed =
  | { type: "flag" }
  | { type: "repeat" }
  | { type: "conflict" }
  | { type: "terminal"; code: string }
  | { type: "decided"; rejection: string | undefined; record: OperationRecord | undefined; emits: LedgerEntry[] };

class Driver {
  readonly actor = walletActor(LIMITS);
  state: WalletState = this.actor.initial();
  /** What the runtime keeps per decided id: its fingerprint and the actor's record. */
  readonly kept = new Map<string, { fingerprint: string; record: OperationRecord }>();
  /** Every entry the actor emitted, in order. */
  readonly entries: LedgerEntry[] = [];
  private step = 0;

  context(nowMs: number, position: string): ActorContext<OperationRecord> {
    return { nowMs, position, recorded: (id) => this.kept.get(id)?.record };
  }

  /** Hands one input over, as the runtime would: at `position`, the processor's clock at `nowMs`. */
  send(input: WalletInput, nowMs: number, position = `test:0:${++this.step}`): Observed {
    if (input.type === "command") {
      // The runtime's dedupe: the id's first decision is the one.
      const prior = this.kept.get(input.command.operationId);
      if (prior) return prior.fingerprint === commandFingerprint(input.command) ? { type: "repeat" } : { type: "conflict" };
    }
    const before = this.state;
    const outcome: Outcome<WalletState, LedgerEntry, OperationRecord> = this.actor.handle(before, input, this.context(nowMs, position));
    if (isTerminal(outcome)) return { type: "terminal", code: outcome.terminal.code };
    this.state = outcome.state;
    if (input.type === "flag") {
      expect(outcome.emits).toEqual([]);
      expect(outcome.record).toBeUndefined();
      expect(outcome.rejection).toBeUndefined();
      return { type: "flag" };
    }
    if (outcome.record) this.kept.set(input.command.operationId, { fingerprint: commandFingerprint(input.command), record: outcome.record });
    this.entries.push(...outcome.emits);
    return { type: "decided", rejection: outcome.rejection, record: outcome.record, emits: outcome.emits };
  }
}

// ---------------------------------------------------------------------------
// The model, from the rules alone.
// ---------------------------------------------------------------------------

interface ModelOp {
  kind: OperationKind;
  content: string;
  status: "settled" | "rejected";
  reason: string;
  amount: bigint;
  entryId: number;
  balanceAfter: bigint;
  reversalOf: string;
  createdMs: number;
  decidedMs: number;
  description: string;
  reference: string;
  position: string;
}

class Model {
  balance = 0n;
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
  readonly ops = new Map<string, ModelOp>();
  readonly history: LedgerEntry[] = [];

  /** Money the wallet may still send: nothing is ever held yet. */
  get available(): bigint {
    return this.balance + this.creditLimit;
  }

  /** What makes two commands with one id the same operation: what they do, not their words. */
  static content(c: WalletCommand): string {
    if (c.kind === "reversal") return `reversal of ${c.reversalOf}`;
    if (c.kind === "credit_limit") return `limit ${c.creditLimitMinor}`;
    return `${c.kind} ${c.amountMinor}`;
  }

  apply(input: WalletInput, nowMs: number, position: string): Observed {
    if (input.type === "flag") {
      this.flagged = input.change.flagged;
      return { type: "flag" };
    }
    const c = input.command;
    const known = this.ops.get(c.operationId);
    if (known) return known.content === Model.content(c) ? { type: "repeat" } : { type: "conflict" };

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
        else if (this.balance + amount < 0n) reason = "credit_limit_below_usage";
        newLimit = amount;
        break;
      case "reversal": {
        const target = this.ops.get(c.reversalOf);
        // Nothing decided under that id yet: not a decision, the reversal's id stays free.
        if (target === undefined) return { type: "terminal", code: "operation_not_found" };
        if (target.kind !== "deposit" || target.status !== "settled") reason = "operation_not_reversible";
        else {
          amount = target.amount;
          delta = -target.amount;
        }
        break;
      }
    }
    const decidedMs = Math.max(nowMs, this.lastRecordedMs);
    this.lastRecordedMs = decidedMs;
    const op: ModelOp = {
      kind: c.kind,
      content: Model.content(c),
      status: reason === "" ? "settled" : "rejected",
      reason,
      amount,
      entryId: 0,
      balanceAfter: this.balance,
      reversalOf: c.kind === "reversal" ? c.reversalOf : "",
      createdMs: c.eventTimeMs,
      decidedMs,
      description: c.description,
      reference: c.reference,
      position,
    };
    this.ops.set(c.operationId, op);
    let entry: LedgerEntry | undefined;
    if (reason !== "") {
      this.rejectedCount++;
      if (c.kind === "deposit") this.rejectedDepositCount++;
      this.lastRejection = reason;
    } else if (c.kind === "credit_limit") {
      this.creditLimit = newLimit;
    } else {
      this.balance += delta;
      op.entryId = this.history.length + 1;
      op.balanceAfter = this.balance;
      entry = {
        walletId: c.walletId, entryId: op.entryId, operationId: c.operationId, kind: c.kind, amountMinor: delta,
        balanceAfterMinor: this.balance, eventTimeMs: c.eventTimeMs, recordedMs: decidedMs, description: c.description,
      };
      this.history.push(entry);
      if (c.kind === "deposit") {
        this.depositCount++;
        this.lastDepositId = c.operationId;
        this.lastDepositTimeMs = c.eventTimeMs;
      } else if (c.kind === "withdrawal") this.withdrawalCount++;
      else this.reversalCount++;
    }
    return { type: "decided", rejection: reason === "" ? undefined : reason, record: Model.record(op), emits: entry ? [entry] : [] };
  }

  static record(op: ModelOp): OperationRecord {
    return {
      kind: op.kind, amountMinor: op.amount, reason: op.reason, createdMs: op.createdMs, decidedMs: op.decidedMs,
      description: op.description, reference: op.reference, position: op.position, entryId: op.entryId,
      balanceAfterMinor: op.balanceAfter, reversalOf: op.reversalOf,
    };
  }

  state(): WalletState {
    return {
      balanceMinor: this.balance, heldMinor: 0n, creditLimitMinor: this.creditLimit, flagged: this.flagged,
      depositCount: this.depositCount, withdrawalCount: this.withdrawalCount, reversalCount: this.reversalCount,
      rejectedCount: this.rejectedDepositCount, rejectedOperationCount: this.rejectedCount,
      lastDepositId: this.lastDepositId, lastDepositTimeMs: this.lastDepositTimeMs, lastRejectionCode: this.lastRejection,
      entryCount: this.history.length, lastRecordedMs: this.lastRecordedMs,
    };
  }
}

/** The checks made after every step: state, available, every operation's record, the history. */
function compare(driver: Driver, model: Model): void {
  const s = driver.state;
  expect(s).toEqual(model.state());
  expect(s.balanceMinor + s.creditLimitMinor - s.heldMinor).toBe(model.available);
  // Every operation keeps the record of its one decision.
  expect(driver.kept.size).toBe(model.ops.size);
  for (const [id, op] of model.ops) expect(driver.kept.get(id)?.record).toEqual(Model.record(op));
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
const timing = { nowMs: fc.integer({ min: 0, max: 1_000 }), eventTimeMs: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 2_000_000 })) };

const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ ...timing, t: fc.constant("deposit" as const), source: fc.constantFrom<Source>("commands", "deposits"), amount: depositAmount }) },
  { weight: 4, arbitrary: fc.record({ ...timing, t: fc.constant("withdrawal" as const), amount: withdrawalAmount }) },
  { weight: 2, arbitrary: fc.record({ ...timing, t: fc.constant("credit_limit" as const), limit: limitSpec }) },
  { weight: 3, arbitrary: fc.record({ ...timing, t: fc.constant("reversal" as const), target }) },
  { weight: 1, arbitrary: fc.record({ ...timing, t: fc.constant("flag" as const), flagged: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ ...timing, t: fc.constant("repeat" as const), pick: fc.nat(), otherSource: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ ...timing, t: fc.constant("conflict" as const), pick: fc.nat(), change: fc.constantFrom<"amount" | "kind">("amount", "kind") }) },
);

/** The commands sent so far, to repeat or reverse. */
interface Sent {
  source: Source;
  command: WalletCommand;
}

/** Turns a step into an input, against the model's state at that point. */
function resolve(s: Step, index: number, model: Model, sent: Sent[]): WalletInput | undefined {
  const base = { operationId: `op${index}`, walletId: WALLET, eventTimeMs: s.eventTimeMs, description: `step ${index}`, reference: index % 3 === 0 ? `ref${index}` : "" };
  const amountOf = (a: AmountSpec) =>
    a.at === "value" ? a.value : a.at === "available" ? model.available + a.delta : LIMITS.balanceMaxMinor - model.balance + a.delta;
  switch (s.t) {
    case "deposit":
      return { type: "command", source: s.source, command: { ...base, kind: "deposit", amountMinor: amountOf(s.amount) } };
    case "withdrawal":
      return { type: "command", source: "commands", command: { ...base, kind: "withdrawal", amountMinor: amountOf(s.amount) } };
    case "credit_limit": {
      const limit = s.limit.at === "value" ? s.limit.value : -model.balance + s.limit.delta;
      return { type: "command", source: "commands", command: { ...base, kind: "credit_limit", creditLimitMinor: limit } };
    }
    case "reversal": {
      let of: string;
      const t = s.target;
      if (t.of === "unknown") of = `ghost${index}`;
      else if (t.of === "next") of = `op${index + 1}`; // a deposit not decided yet, maybe never
      else {
        const pool = t.of === "deposit" ? sent.filter((x) => x.command.kind === "deposit") : sent;
        if (pool.length === 0) return undefined;
        of = pool[t.pick % pool.length]!.command.operationId;
      }
      return { type: "command", source: "commands", command: { ...base, operationId: reversalId(of), kind: "reversal", reversalOf: of } };
    }
    case "flag":
      return { type: "flag", change: { eventId: `flag${index}`, walletId: WALLET, flagged: s.flagged, reason: "manual", eventTimeMs: s.eventTimeMs } };
    case "repeat": {
      if (sent.length === 0) return undefined;
      const again = sent[s.pick % sent.length]!;
      // A deposit counts once whichever topic it comes on.
      const source = again.command.kind === "deposit" && s.otherSource ? (again.source === "commands" ? "deposits" : "commands") : again.source;
      return { type: "command", source, command: again.command };
    }
    case "conflict": {
      if (sent.length === 0) return undefined;
      const { command: c, source } = sent[s.pick % sent.length]!;
      const same = { operationId: c.operationId, walletId: WALLET, eventTimeMs: c.eventTimeMs, description: c.description, reference: c.reference };
      if (s.change === "kind" || c.kind === "reversal") {
        const amountMinor = c.kind === "reversal" || c.kind === "credit_limit" ? 7n : c.amountMinor;
        return { type: "command", source: "commands", command: { ...same, kind: c.kind === "withdrawal" ? "deposit" : "withdrawal", amountMinor } };
      }
      if (c.kind === "credit_limit") return { type: "command", source: "commands", command: { ...same, kind: "credit_limit", creditLimitMinor: c.creditLimitMinor + 1n } };
      return { type: "command", source, command: { ...same, kind: c.kind, amountMinor: c.amountMinor + 1n } };
    }
  }
}

/** Edges the generator must reach, counted over the whole property. */
const reached = {
  withdrawalOfExactlyAvailable: 0,
  withdrawalOneOver: 0,
  limitDownToExactUsage: 0,
  limitLoweredToExactUsage: 0,
  reversalIntoDebt: 0,
  debitRefusedInDebt: 0,
  depositToExactlyBalanceMax: 0,
  repeats: 0,
  conflicts: 0,
  terminals: 0,
  rejections: new Set<string>(),
};

function note(input: WalletInput, model: Model, before: { available: bigint; balance: bigint; creditLimit: bigint }, seen: Observed): void {
  if (seen.type === "repeat") reached.repeats++;
  if (seen.type === "conflict") reached.conflicts++;
  if (seen.type === "terminal") reached.terminals++;
  if (seen.type !== "decided" || input.type !== "command") return;
  const c = input.command;
  if (seen.rejection) reached.rejections.add(seen.rejection);
  if (c.kind === "withdrawal" && !seen.rejection && model.available === 0n && before.available > 0n) reached.withdrawalOfExactlyAvailable++;
  if (c.kind === "withdrawal" && seen.rejection === "insufficient_funds" && c.amountMinor === before.available + 1n) reached.withdrawalOneOver++;
  if (c.kind === "credit_limit" && !seen.rejection && before.balance < 0n && model.available === 0n) {
    reached.limitDownToExactUsage++;
    if (c.creditLimitMinor < before.creditLimit) reached.limitLoweredToExactUsage++;
  }
  if (c.kind === "reversal" && !seen.rejection && model.available < 0n) reached.reversalIntoDebt++;
  if (c.kind === "withdrawal" && seen.rejection === "insufficient_funds" && before.available < 0n) reached.debitRefusedInDebt++;
  if (c.kind === "deposit" && !seen.rejection && model.balance === LIMITS.balanceMaxMinor) reached.depositToExactlyBalanceMax++;
}

describe("wallet actor against a model", () => {
  test("every operation's decision, the balance, available and the history match the model after every step", () => {
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 50, size: "max" }), (steps) => {
        const driver = new Driver();
        const model = new Model();
        const sent: Sent[] = [];
        steps.forEach((s, index) => {
          const input = resolve(s, index, model, sent);
          if (!input) return;
          const before = { available: model.available, balance: model.balance, creditLimit: model.creditLimit };
          const position = `commands:0:${index}`;
          const expected = model.apply(input, s.nowMs, position);
          const seen = driver.send(input, s.nowMs, position);
          expect(seen).toEqual(expected);
          note(input, model, before, seen);
          if (input.type === "command") sent.push({ source: input.source, command: input.command });
          compare(driver, model);
        });
      }),
      { numRuns: 1_000 },
    );
    // The generator does reach the edges it is meant to (a test that never meets them
    // would pass for nothing).
    expect(reached.withdrawalOfExactlyAvailable).toBeGreaterThan(100);
    expect(reached.withdrawalOneOver).toBeGreaterThan(200);
    expect(reached.limitDownToExactUsage).toBeGreaterThan(15);
    expect(reached.limitLoweredToExactUsage).toBeGreaterThan(5);
    expect(reached.reversalIntoDebt).toBeGreaterThan(40);
    expect(reached.debitRefusedInDebt).toBeGreaterThan(15);
    expect(reached.depositToExactlyBalanceMax).toBeGreaterThan(8);
    expect(reached.repeats).toBeGreaterThan(1_000);
    expect(reached.conflicts).toBeGreaterThan(400);
    expect(reached.terminals).toBeGreaterThan(500);
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

/** Runs `setup`, every input of which must be settled (or a flag), then returns the driver. */
function after(setup: WalletInput[]): Driver {
  const driver = new Driver();
  for (const input of setup) {
    const seen = driver.send(input, 10);
    if (seen.type === "decided") expect(seen.rejection).toBeUndefined();
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
  { name: "a withdrawal over the amount max", setup: [deposit(1_000n), deposit(1_000n)], input: withdrawal(1_001n), reason: "amount_exceeds_max" },
  { name: "a deposit over the amount max on commands", setup: [], input: deposit(1_001n), reason: "amount_exceeds_max" },
  { name: "a deposit one over the balance max", setup: [deposit(1_000n), deposit(1_000n), deposit(999n)], input: deposit(2n), reason: "balance_would_exceed_max" },
  { name: "a deposit from `deposits` one over the balance max", setup: [deposit(1_000n), deposit(1_000n), deposit(1_000n)], input: deposit(1n, undefined, "deposits"), reason: "balance_would_exceed_max" },
  { name: "a withdrawal one over the balance", setup: [deposit(100n)], input: withdrawal(101n), reason: "insufficient_funds" },
  { name: "a withdrawal one over balance plus credit limit", setup: [deposit(100n), creditLimit(50n)], input: withdrawal(151n), reason: "insufficient_funds" },
  { name: "a withdrawal from an empty wallet", setup: [], input: withdrawal(1n), reason: "insufficient_funds" },
  { name: "a withdrawal from a flagged wallet, within funds", setup: [deposit(100n), flag(true)], input: withdrawal(50n), reason: "rejected_fraud" },
  { name: "a withdrawal from a flagged wallet, over funds", setup: [deposit(100n), flag(true)], input: withdrawal(500n), reason: "rejected_fraud" },
  { name: "a credit limit one over the max", setup: [], input: creditLimit(1_501n), reason: "credit_limit_exceeds_max" },
  { name: "a credit limit one under the usage", setup: [creditLimit(500n), withdrawal(300n)], input: creditLimit(299n), reason: "credit_limit_below_usage" },
  { name: "a credit limit of 0 while in debt", setup: [creditLimit(500n), withdrawal(1n)], input: creditLimit(0n), reason: "credit_limit_below_usage" },
  { name: "reversing a withdrawal", setup: [deposit(100n, "dep"), cmd({ kind: "withdrawal", amountMinor: 10n, operationId: "wd" })], input: reversal("wd"), reason: "operation_not_reversible" },
  { name: "reversing a credit limit change", setup: [cmd({ kind: "credit_limit", creditLimitMinor: 10n, operationId: "cl" })], input: reversal("cl"), reason: "operation_not_reversible" },
  { name: "reversing a reversal", setup: [deposit(100n, "d1"), reversal("d1")], input: reversal(reversalId("d1")), reason: "operation_not_reversible" },
];

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
      if (seen.type !== "decided" || row.input.type !== "command") return;
      expect(seen.rejection).toBe(row.reason);
      expect(seen.emits).toEqual([]);
      expect(seen.record?.reason).toBe(row.reason);
      expect(seen.record?.entryId).toBe(0);
      expect(seen.record?.balanceAfterMinor).toBe(before.balanceMinor);
      const c = row.input.command;
      expect(seen.record?.amountMinor).toBe(c.kind === "reversal" ? 0n : c.kind === "credit_limit" ? c.creditLimitMinor : c.amountMinor);
      expect(driver.state).toEqual({
        ...before,
        rejectedOperationCount: before.rejectedOperationCount + 1,
        rejectedCount: before.rejectedCount + (c.kind === "deposit" ? 1 : 0),
        lastRejectionCode: row.reason,
        lastRecordedMs: 20,
      });
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
      expect(driver.kept.get("bad")?.record.reason).toBe(code);
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

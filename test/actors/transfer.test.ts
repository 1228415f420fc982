// Transfers between wallets, driven on the wallet actor alone: a small network of
// wallets whose driver plays the runtime (an id decided once per wallet, scoped ids
// kept apart as the balance group scopes them, a timer fired only while pending at its
// due time) and the log (each emitted step waits "in flight" until the test delivers
// it, in any order, maybe twice). Worked examples of each rule of the saga, then a
// property over random transfers, deposits and withdrawals between a few wallets,
// with steps delivered in random order and cancels from random timer firings.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { isTerminal, type FiredTimer, type TimerRequest } from "../../actors/types.js";
import {
  available,
  stepWallet,
  TRANSFER_SCOPE,
  transferStepId,
  transferTimerId,
  walletActor,
  type LedgerEntry,
  type OperationRecord,
  type TransferStep,
  type WalletCommand,
  type WalletInput,
  type WalletLimits,
  type WalletOpened,
  type WalletState,
} from "../../actors/wallet.js";
import { scopedId } from "../../src/runtime/group.js";
import { KeptIds, splitEmits } from "./runtime-imitation.js";

const LIMITS: WalletLimits = { amountMaxMinor: 1_000n, balanceMaxMinor: 3_000n, creditLimitMaxMinor: 500n, transferAmountMaxMinor: 800n, transferTimeoutMs: 5_000 };
const actor = walletActor(LIMITS);

// ---------------------------------------------------------------------------
// The driver: wallets, the runtime's part around each, and the log between them.
// ---------------------------------------------------------------------------

type Decision = {
  type: "decided";
  rejection: string | undefined;
  record: OperationRecord | undefined;
  entries: LedgerEntry[];
  steps: TransferStep[];
  opened: WalletOpened[];
  timers: TimerRequest[];
};
type Observed = { type: "repeat" } | { type: "conflict" } | { type: "skipped" } | { type: "terminal"; code: string } | { type: "flag" } | Decision;

/** One wallet: its state, the ids it decided with their records, its pending timers, its entries. */
class Wallet {
  state: WalletState = actor.initial();
  readonly ids = new KeptIds();
  readonly entries: LedgerEntry[] = [];

  constructor(readonly id: string) {}

  get kept() {
    return this.ids.kept;
  }

  get timers() {
    return this.ids.timers;
  }

  /** The record kept for a transfer step's id at this wallet. */
  stepRecord(step: TransferStep["step"], transferId: string, fromWalletId: string): OperationRecord | undefined {
    return this.kept.get(scopedId({ scope: TRANSFER_SCOPE }, transferStepId({ step, transferId, fromWalletId })))?.record;
  }

  decided(step: TransferStep["step"], transferId: string, fromWalletId: string): boolean {
    return this.kept.has(scopedId({ scope: TRANSFER_SCOPE }, transferStepId({ step, transferId, fromWalletId })));
  }

  send(input: WalletInput, nowMs: number, position: string): Observed {
    const admitted = this.ids.admit(input);
    if (admitted.type !== "admitted") return { type: admitted.type };
    const outcome = actor.handle(this.state, input, this.ids.context(nowMs, position));
    if (isTerminal(outcome)) return { type: "terminal", code: outcome.terminal.code };
    this.state = outcome.state;
    if (input.type === "flag") return { type: "flag" };
    this.ids.keep(admitted.identity!, outcome);
    const seen: Decision = { type: "decided", rejection: outcome.rejection, record: outcome.record, ...splitEmits(outcome.emits), timers: outcome.timers ?? [] };
    for (const e of seen.entries) expect(e.walletId).toBe(this.id);
    this.entries.push(...seen.entries);
    return seen;
  }
}

let ids = 0;

/** Wallets, and the steps in flight between them. */
class Network {
  readonly wallets = new Map<string, Wallet>();
  /** Steps emitted and not delivered yet, in the order emitted. */
  readonly flight: TransferStep[] = [];
  readonly opened: WalletOpened[] = [];
  nowMs = 1_000;
  private position = 0;

  wallet(id: string): Wallet {
    let w = this.wallets.get(id);
    if (!w) this.wallets.set(id, (w = new Wallet(id)));
    return w;
  }

  send(walletId: string, input: WalletInput): Observed {
    const seen = this.wallet(walletId).send(input, this.nowMs, `test:0:${++this.position}`);
    if (seen.type === "decided") {
      this.flight.push(...seen.steps);
      this.opened.push(...seen.opened);
    }
    return seen;
  }

  command(walletId: string, command: Partial<WalletCommand> & Pick<WalletCommand, "kind">): Observed {
    const full = { operationId: `op${++ids}`, walletId, eventTimeMs: this.nowMs, description: `${command.kind} ${ids}`, reference: "", ...command } as WalletCommand;
    return this.send(walletId, { type: "command", source: "commands", command: full });
  }

  deposit(walletId: string, amountMinor: bigint): Observed {
    return this.command(walletId, { kind: "deposit", amountMinor });
  }

  transfer(from: string, to: string, amountMinor: bigint, operationId = `t${++ids}`): Observed {
    return this.command(from, { kind: "transfer", toWalletId: to, amountMinor, operationId });
  }

  open(walletId: string, initialAmountMinor = 0n, userId = ""): Observed {
    return this.command(walletId, { kind: "open", operationId: "open", userId, initialAmountMinor });
  }

  flag(walletId: string, flagged: boolean): Observed {
    return this.send(walletId, { type: "flag", change: { eventId: `f${++ids}`, walletId, flagged, reason: "manual", eventTimeMs: 0 } });
  }

  /** Delivers a step to the wallet it is for. */
  step(step: TransferStep): Observed {
    return this.send(stepWallet(step), { type: "transfer", step });
  }

  /** Delivers the in-flight step at `index` (the first by default), taking it out of flight. */
  deliver(index = 0): Observed {
    const [step] = this.flight.splice(index, 1);
    expect(step).toBeDefined();
    return this.step(step!);
  }

  /** The in-flight steps of a kind for a transfer. */
  inFlight(kind: TransferStep["step"], transferId: string): TransferStep[] {
    return this.flight.filter((s) => s.step === kind && s.transferId === transferId);
  }

  /** Fires a wallet's pending timer, at its due time (the clock moves there if it is behind). */
  fire(walletId: string, timerId: string, dueMs = this.wallet(walletId).timers.get(timerId)!): Observed {
    this.nowMs = Math.max(this.nowMs, dueMs);
    const fired: FiredTimer = { walletId, timerId, dueMs };
    return this.send(walletId, { type: "timer", fired });
  }
}

const decided = (seen: Observed): Decision => {
  expect(seen.type).toBe("decided");
  return seen as Decision;
};

/** A network where `a` holds `funds` and `b` is open and empty. */
function funded(funds = 500n): Network {
  const net = new Network();
  expect(decided(net.deposit("a", funds)).rejection).toBeUndefined();
  expect(decided(net.open("b")).rejection).toBeUndefined();
  return net;
}

// ---------------------------------------------------------------------------
// At the source: the rules, and the hold.
// ---------------------------------------------------------------------------

describe("a transfer at its source", () => {
  const refusals: [string, (net: Network) => Observed, string][] = [
    ["an amount of 0", (net) => net.transfer("a", "b", 0n), "amount_must_be_positive"],
    ["a negative amount", (net) => net.transfer("a", "b", -5n), "amount_must_be_positive"],
    ["one over the transfer maximum, though within the deposit maximum and the funds", (net) => (net.deposit("a", 500n), net.transfer("a", "b", 801n)), "amount_exceeds_max"],
    ["to the same wallet", (net) => net.transfer("a", "a", 10n), "same_wallet"],
    ["from a flagged wallet", (net) => (net.flag("a", true), net.transfer("a", "b", 10n)), "rejected_fraud"],
    ["one over the balance", (net) => net.transfer("a", "b", 501n), "insufficient_funds"],
    ["one over what a pending transfer's hold leaves", (net) => (net.transfer("a", "b", 300n), net.transfer("a", "b", 201n)), "insufficient_funds"],
    ["one over balance plus credit limit, less a hold", (net) => (net.command("a", { kind: "credit_limit", creditLimitMinor: 100n }), net.transfer("a", "b", 300n), net.transfer("a", "b", 301n)), "insufficient_funds"],
  ];
  for (const [name, run, reason] of refusals) {
    test(`${name}: ${reason}, nothing held, nothing sent`, () => {
      const net = funded();
      const flightBefore = net.flight.length;
      const seen = run(net);
      const d = decided(seen);
      expect(d.rejection).toBe(reason);
      expect(d.record).toMatchObject({ kind: "transfer", reason, pending: false, expiresMs: null, entryId: 0 });
      expect(d.entries).toEqual([]);
      expect(d.steps).toEqual([]);
      expect(d.timers).toEqual([]);
      // Whatever the setup held is still held; the refused one added nothing.
      expect(net.flight.length - flightBefore).toBe(net.wallet("a").state.pendingTransferCount);
      expect(net.wallet("a").state.lastRejectionCode).toBe(reason);
      expect(available(net.wallet("a").state)).toBeGreaterThanOrEqual(0n);
    });
  }

  test("exactly what balance plus credit limit, less a hold, leaves is accepted, down to available 0", () => {
    const net = funded();
    net.command("a", { kind: "credit_limit", creditLimitMinor: 100n });
    expect(decided(net.transfer("a", "b", 300n)).rejection).toBeUndefined();
    expect(decided(net.transfer("a", "b", 300n)).rejection).toBeUndefined();
    expect(available(net.wallet("a").state)).toBe(0n);
    expect(decided(net.transfer("a", "b", 1n)).rejection).toBe("insufficient_funds");
    expect(decided(net.command("a", { kind: "withdrawal", amountMinor: 1n })).rejection).toBe("insufficient_funds");
  });

  test("a hold lowers available, not the balance, and sends one credit request keyed by the destination, with a timer at its deadline", () => {
    const net = funded();
    net.nowMs = 2_000;
    const d = decided(net.command("a", { kind: "transfer", operationId: "t1", toWalletId: "b", amountMinor: 200n, eventTimeMs: 1_500, description: "rent", reference: "r-1" }));
    expect(d.rejection).toBeUndefined();
    expect(d.entries).toEqual([]);
    const a = net.wallet("a").state;
    expect([a.balanceMinor, a.heldMinor, available(a), a.pendingTransferCount]).toEqual([500n, 200n, 300n, 1]);
    // Pending from when it was asked for (the event time, never later than now).
    const expiresMs = 1_500 + LIMITS.transferTimeoutMs;
    expect(d.steps).toEqual([
      { step: "credit_requested", transferId: "t1", fromWalletId: "a", toWalletId: "b", amountMinor: 200n, eventTimeMs: 1_500, expiresMs, description: "rent", reason: "", entryId: 0 },
    ]);
    expect(stepWallet(d.steps[0]!)).toBe("b");
    expect(d.timers).toEqual([{ id: transferTimerId("t1"), dueMs: expiresMs }]);
    expect(d.record).toMatchObject({ kind: "transfer", amountMinor: 200n, reason: "", pending: true, expiresMs, counterpartyWalletId: "b", reference: "r-1", balanceAfterMinor: 500n, entryId: 0 });
    // Nothing at the destination until the request is delivered.
    expect(net.wallet("b").state.balanceMinor).toBe(0n);
  });

  test("the deadline counts from the event time, or from now if the event claims a later time", () => {
    const net = funded();
    net.nowMs = 10_000;
    net.command("a", { kind: "transfer", operationId: "late", toWalletId: "b", amountMinor: 1n, eventTimeMs: 2_000 });
    net.command("a", { kind: "transfer", operationId: "future", toWalletId: "b", amountMinor: 1n, eventTimeMs: 50_000 });
    expect(net.wallet("a").timers).toEqual(new Map([[transferTimerId("late"), 7_000], [transferTimerId("future"), 15_000]]));
  });
});

// ---------------------------------------------------------------------------
// At the destination: the one decider.
// ---------------------------------------------------------------------------

describe("a credit request at its destination", () => {
  test("credits: a transfer_in entry with its counterparty, and credit_applied back to the source with the entry's id", () => {
    const net = funded();
    net.deposit("b", 40n);
    net.transfer("a", "b", 200n, "t1");
    const request = net.flight[0]!;
    const d = decided(net.deliver());
    expect(d.rejection).toBeUndefined();
    expect(d.entries).toEqual([
      { walletId: "b", entryId: 2, operationId: "t1", kind: "transfer_in", amountMinor: 200n, balanceAfterMinor: 240n, eventTimeMs: request.eventTimeMs, recordedMs: net.nowMs, description: request.description, counterpartyWalletId: "a" },
    ]);
    expect(d.steps).toEqual([{ ...request, step: "credit_applied", reason: "", entryId: 2 }]);
    expect(stepWallet(d.steps[0]!)).toBe("a");
    expect(d.record).toMatchObject({ kind: "transfer_in", operationId: "t1", counterpartyWalletId: "a", amountMinor: 200n, reason: "", entryId: 2, balanceAfterMinor: 240n });
    expect(net.wallet("b").state).toMatchObject({ balanceMinor: 240n, transferInCount: 1, heldMinor: 0n });
    // The source still holds it, until the answer arrives.
    expect(net.wallet("a").state).toMatchObject({ balanceMinor: 500n, heldMinor: 200n });
  });

  test("destination_not_found for a wallet never opened nor paid, even one with a flag, a credit limit and a refused deposit", () => {
    const net = funded();
    net.flag("ghost", false);
    net.command("ghost", { kind: "credit_limit", creditLimitMinor: 100n });
    expect(decided(net.deposit("ghost", 0n)).rejection).toBe("amount_must_be_positive");
    net.transfer("a", "ghost", 50n, "t1");
    const d = decided(net.deliver());
    expect(d.rejection).toBe("destination_not_found");
    expect(d.entries).toEqual([]);
    expect(d.steps).toEqual([expect.objectContaining({ step: "credit_refused", reason: "destination_not_found", transferId: "t1", fromWalletId: "a", toWalletId: "ghost" })]);
    expect(d.record).toMatchObject({ kind: "transfer_in", reason: "destination_not_found", entryId: 0 });
    expect(net.wallet("ghost").state.balanceMinor).toBe(0n);
  });

  test("an opened wallet with a zero balance accepts, and so does one never opened that has had a deposit", () => {
    const net = funded();
    net.deposit("paid", 1n);
    net.transfer("a", "b", 10n, "t1");
    net.transfer("a", "paid", 10n, "t2");
    expect(decided(net.deliver()).rejection).toBeUndefined();
    expect(decided(net.deliver()).rejection).toBeUndefined();
    expect(net.wallet("b").state.balanceMinor).toBe(10n);
    expect(net.wallet("paid").state.balanceMinor).toBe(11n);
  });

  test("balance_would_exceed_max when the credit would take the destination one over its maximum; exactly to it is fine", () => {
    const fits = funded(800n);
    for (const amount of [1_000n, 1_000n, 200n]) fits.deposit("b", amount);
    fits.transfer("a", "b", 800n);
    expect(decided(fits.deliver()).rejection).toBeUndefined();
    expect(fits.wallet("b").state.balanceMinor).toBe(3_000n);
    const over = funded(800n);
    for (const amount of [1_000n, 1_000n, 201n]) over.deposit("b", amount);
    over.transfer("a", "b", 800n);
    const refused = decided(over.deliver());
    expect(refused.rejection).toBe("balance_would_exceed_max");
    expect(refused.entries).toEqual([]);
    expect(refused.steps).toEqual([expect.objectContaining({ step: "credit_refused", reason: "balance_would_exceed_max" })]);
    expect(over.wallet("b").state.balanceMinor).toBe(2_201n);
  });

  test("a request decided at or after its deadline is refused transfer_expired, with a reply", () => {
    const net = funded();
    net.transfer("a", "b", 10n, "t1");
    const request = net.flight[0]!;
    net.nowMs = request.expiresMs;
    const d = decided(net.deliver());
    expect(d.rejection).toBe("transfer_expired");
    expect(d.steps).toEqual([{ ...request, step: "credit_refused", reason: "transfer_expired" }]);
    expect(decided(net.deliver()).rejection).toBe("transfer_expired");
    expect(net.wallet("a").state).toMatchObject({ balanceMinor: 500n, heldMinor: 0n, pendingTransferCount: 0 });
  });

  test("a request delivered twice is decided once", () => {
    const net = funded();
    net.transfer("a", "b", 10n, "t1");
    const request = net.flight[0]!;
    decided(net.deliver());
    expect(net.step(request)).toEqual({ type: "repeat" });
    expect(net.step({ ...request, amountMinor: 11n })).toEqual({ type: "conflict" });
    expect(net.wallet("b").state.balanceMinor).toBe(10n);
  });
});

// ---------------------------------------------------------------------------
// Back at the source: settle or release.
// ---------------------------------------------------------------------------

describe("the outcome at the source", () => {
  test("credit_applied settles: a transfer_out entry, the hold released, the balance down, the timer cleared", () => {
    const net = funded();
    net.command("a", { kind: "transfer", operationId: "t1", toWalletId: "b", amountMinor: 200n, reference: "r-1" });
    net.deliver();
    const applied = net.flight[0]!;
    const d = decided(net.deliver());
    expect(d.rejection).toBeUndefined();
    expect(d.entries).toEqual([
      { walletId: "a", entryId: 2, operationId: "t1", kind: "transfer_out", amountMinor: -200n, balanceAfterMinor: 300n, eventTimeMs: applied.eventTimeMs, recordedMs: net.nowMs, description: applied.description, counterpartyWalletId: "b" },
    ]);
    expect(d.steps).toEqual([]);
    expect(d.timers).toEqual([{ id: transferTimerId("t1"), dueMs: null }]);
    expect(d.record).toMatchObject({ kind: "transfer_out", operationId: "t1", reason: "", entryId: 2, amountMinor: 200n, balanceAfterMinor: 300n, counterpartyWalletId: "b", reference: "r-1", pending: false });
    const a = net.wallet("a").state;
    expect([a.balanceMinor, a.heldMinor, available(a), a.pendingTransferCount, a.transferOutCount]).toEqual([300n, 0n, 300n, 0, 1]);
    expect(net.wallet("a").timers.size).toBe(0);
    expect(net.wallet("b").state.balanceMinor).toBe(200n);
  });

  for (const reason of ["destination_not_found", "balance_would_exceed_max", "transfer_expired"] as const) {
    test(`credit_refused (${reason}) releases the hold, and the transfer is rejected with the destination's reason`, () => {
      const net = funded();
      net.transfer("a", "b", 200n, "t1");
      const request = net.flight.shift()!;
      const d = decided(net.step({ ...request, step: "credit_refused", reason }));
      expect(d.rejection).toBe(reason);
      expect(d.entries).toEqual([]);
      expect(d.timers).toEqual([{ id: transferTimerId("t1"), dueMs: null }]);
      expect(d.record).toMatchObject({ kind: "transfer", operationId: "t1", reason, entryId: 0, balanceAfterMinor: 500n });
      expect(net.wallet("a").state).toMatchObject({ balanceMinor: 500n, heldMinor: 0n, pendingTransferCount: 0, lastRejectionCode: reason, rejectedOperationCount: 1 });
      expect(net.wallet("a").timers.size).toBe(0);
    });
  }

  test("an answer for a transfer the source never held is terminal (transfer_not_found), and one for another amount or wallet is terminal (transfer_mismatch)", () => {
    const net = funded();
    net.transfer("a", "b", 200n, "t1");
    const request = net.flight[0]!;
    const before = net.wallet("a").state;
    const forge = (changes: Partial<TransferStep>) => net.step({ ...request, step: "credit_applied", entryId: 1, ...changes });
    expect(forge({ transferId: "nope" })).toEqual({ type: "terminal", code: "transfer_not_found" });
    // A refused transfer holds nothing either, nor does an operation of another kind.
    net.transfer("a", "a", 5n, "self");
    expect(forge({ transferId: "self", toWalletId: "a", amountMinor: 5n })).toEqual({ type: "terminal", code: "transfer_not_found" });
    net.command("a", { kind: "deposit", operationId: "dep", amountMinor: 5n });
    expect(forge({ transferId: "dep", amountMinor: 5n })).toEqual({ type: "terminal", code: "transfer_not_found" });
    expect(forge({ amountMinor: 201n })).toEqual({ type: "terminal", code: "transfer_mismatch" });
    expect(forge({ amountMinor: 199n, step: "credit_refused", reason: "destination_not_found", entryId: 0 })).toEqual({ type: "terminal", code: "transfer_mismatch" });
    expect(forge({ toWalletId: "c" })).toEqual({ type: "terminal", code: "transfer_mismatch" });
    // Nothing was decided by the forgeries: the real answer still settles it.
    expect(net.wallet("a").state).toMatchObject({ balanceMinor: before.balanceMinor + 5n, heldMinor: before.heldMinor, pendingTransferCount: 1 });
    expect(net.wallet("a").kept.has(scopedId({ scope: TRANSFER_SCOPE }, transferStepId({ step: "credit_applied", transferId: "t1", fromWalletId: "a" })))).toBe(false);
    net.deliver();
    expect(decided(net.deliver()).rejection).toBeUndefined();
    expect(net.wallet("a").state).toMatchObject({ balanceMinor: 305n, heldMinor: 0n });
  });

  test("once answered, a second answer is the same id: a repeat, or a conflict if it says otherwise", () => {
    const net = funded();
    net.transfer("a", "b", 200n, "t1");
    net.deliver();
    const applied = net.flight[0]!;
    decided(net.deliver());
    expect(net.step(applied)).toEqual({ type: "repeat" });
    expect(net.step({ ...applied, step: "credit_refused", reason: "transfer_expired", entryId: 0 })).toEqual({ type: "conflict" });
    expect(net.wallet("a").state).toMatchObject({ balanceMinor: 300n, heldMinor: 0n });
  });
});

// ---------------------------------------------------------------------------
// The deadline: the source's timer, and cancels at the destination.
// ---------------------------------------------------------------------------

describe("a transfer past its deadline", () => {
  test("the timer sends cancel_requested to the destination while the transfer is pending", () => {
    const net = funded();
    net.transfer("a", "b", 200n, "t1");
    const request = net.flight[0]!;
    const d = decided(net.fire("a", transferTimerId("t1")));
    expect(d.rejection).toBeUndefined();
    expect(d.record).toBeUndefined();
    expect(d.entries).toEqual([]);
    expect(d.steps).toEqual([{ ...request, step: "cancel_requested" }]);
    expect(stepWallet(d.steps[0]!)).toBe("b");
    // The hold stays until the destination answers.
    expect(net.wallet("a").state).toMatchObject({ heldMinor: 200n, pendingTransferCount: 1 });
    expect(net.wallet("a").timers.size).toBe(0);
  });

  test("once decided, a firing does nothing: the runtime skips it (the timer was cleared), and the actor, handed it all the same, sends nothing", () => {
    const net = funded();
    net.transfer("a", "b", 200n, "t1");
    const due = net.wallet("a").timers.get(transferTimerId("t1"))!;
    net.deliver();
    net.deliver();
    expect(net.fire("a", transferTimerId("t1"), due)).toEqual({ type: "skipped" });
    const a = net.wallet("a");
    const stale = actor.handle(a.state, { type: "timer", fired: { walletId: "a", timerId: transferTimerId("t1"), dueMs: due } }, a.ids.context(net.nowMs, "test:0:0"));
    expect(isTerminal(stale)).toBe(false);
    if (isTerminal(stale)) return;
    expect(stale.emits).toEqual([]);
    expect(stale.state).toEqual(a.state);
    expect(stale.rejection).toBeUndefined();
    // Likewise after a refusal.
    net.transfer("a", "ghost", 10n, "t2");
    const due2 = net.wallet("a").timers.get(transferTimerId("t2"))!;
    net.deliver();
    net.deliver();
    const stale2 = actor.handle(a.state, { type: "timer", fired: { walletId: "a", timerId: transferTimerId("t2"), dueMs: due2 } }, a.ids.context(net.nowMs, "test:0:0"));
    expect(!isTerminal(stale2) && stale2.emits).toEqual([]);
  });

  test("a cancel before the credit: the destination refuses transfer_expired, the later request is refused without a reply, the source releases", () => {
    const net = funded();
    net.transfer("a", "b", 200n, "t1");
    net.fire("a", transferTimerId("t1"));
    const [request, cancel] = net.flight.splice(0, 2);
    expect([request!.step, cancel!.step]).toEqual(["credit_requested", "cancel_requested"]);
    const c = decided(net.step(cancel!));
    expect(c.rejection).toBe("transfer_expired");
    expect(c.steps).toEqual([{ ...request!, step: "credit_refused", reason: "transfer_expired" }]);
    expect(c.record).toMatchObject({ kind: "transfer_in", reason: "transfer_expired", operationId: "t1", counterpartyWalletId: "a", entryId: 0 });
    const r = decided(net.step(request!));
    expect(r.rejection).toBe("transfer_expired");
    expect(r.steps).toEqual([]);
    expect(r.entries).toEqual([]);
    expect(net.wallet("b").state.balanceMinor).toBe(0n);
    const release = decided(net.deliver());
    expect(release.rejection).toBe("transfer_expired");
    expect(net.flight).toEqual([]);
    expect(net.wallet("a").state).toMatchObject({ balanceMinor: 500n, heldMinor: 0n, pendingTransferCount: 0 });
  });

  test("a cancel after the credit is ignored: the credit stands and the source settles", () => {
    const net = funded();
    net.transfer("a", "b", 200n, "t1");
    // Credited in time; the deadline passes before the answer reaches the source.
    expect(decided(net.deliver()).rejection).toBeUndefined();
    net.fire("a", transferTimerId("t1"));
    const [applied, cancel] = net.flight.splice(0, 2);
    expect([applied!.step, cancel!.step]).toEqual(["credit_applied", "cancel_requested"]);
    net.flight.push(applied!);
    const bBefore = net.wallet("b").state;
    const c = decided(net.step(cancel!));
    expect(c).toMatchObject({ rejection: undefined, record: undefined, entries: [], steps: [] });
    expect(net.wallet("b").state).toEqual(bBefore);
    expect(decided(net.deliver()).entries).toEqual([expect.objectContaining({ kind: "transfer_out", amountMinor: -200n })]);
    expect(net.wallet("a").state).toMatchObject({ balanceMinor: 300n, heldMinor: 0n });
    expect(net.wallet("b").state.balanceMinor).toBe(200n);
  });

  test("a cancel after a refusal is ignored too: one answer per transfer", () => {
    const net = funded();
    net.transfer("a", "ghost", 200n, "t1");
    expect(decided(net.deliver()).rejection).toBe("destination_not_found");
    net.fire("a", transferTimerId("t1"));
    const cancel = net.flight.pop()!;
    expect(cancel.step).toBe("cancel_requested");
    expect(decided(net.step(cancel)).steps).toEqual([]);
    expect(net.flight.map((s) => [s.step, s.reason])).toEqual([["credit_refused", "destination_not_found"]]);
  });
});

// ---------------------------------------------------------------------------
// Opening a wallet.
// ---------------------------------------------------------------------------

describe("opening a wallet", () => {
  test("with an initial amount, for a user: an `open` entry, and the opening announced for the user", () => {
    const net = new Network();
    const d = decided(net.command("w", { kind: "open", operationId: "open", userId: "u1", initialAmountMinor: 250n, description: "welcome" }));
    expect(d.rejection).toBeUndefined();
    expect(d.entries).toEqual([
      { walletId: "w", entryId: 1, operationId: "open", kind: "open", amountMinor: 250n, balanceAfterMinor: 250n, eventTimeMs: net.nowMs, recordedMs: net.nowMs, description: "welcome", counterpartyWalletId: "" },
    ]);
    expect(d.opened).toEqual([{ userId: "u1", walletId: "w", openedMs: net.nowMs }]);
    expect(d.record).toMatchObject({ kind: "open", amountMinor: 250n, reason: "", entryId: 1, balanceAfterMinor: 250n });
    expect(net.wallet("w").state).toMatchObject({ opened: true, userId: "u1", initialAmountMinor: 250n, openedMs: net.nowMs, balanceMinor: 250n, depositCount: 0 });
  });

  test("empty and for no user: no entry and nothing announced, but the wallet can now be paid", () => {
    const net = funded();
    const d = decided(net.open("w"));
    expect(d).toMatchObject({ rejection: undefined, entries: [], opened: [] });
    expect(net.wallet("w").state).toMatchObject({ opened: true, userId: "", balanceMinor: 0n, entryCount: 0 });
    net.transfer("a", "w", 5n);
    expect(decided(net.deliver()).rejection).toBeUndefined();
  });

  test("opening twice is one operation: a repeat, or a conflict with other content", () => {
    const net = new Network();
    net.open("w", 10n, "u1");
    expect(net.open("w", 10n, "u1")).toEqual({ type: "repeat" });
    expect(net.open("w", 11n, "u1")).toEqual({ type: "conflict" });
    expect(net.wallet("w").state.balanceMinor).toBe(10n);
    expect(net.opened).toHaveLength(1);
  });
});

// ---------------------------------------------------------------------------
// The property: money is conserved, whatever the order.
// ---------------------------------------------------------------------------

type AmountSpec = { at: "available"; delta: bigint } | { at: "value"; value: bigint };
type Action =
  | { t: "deposit"; wallet: number; amount: bigint }
  | { t: "withdrawal"; wallet: number; amount: AmountSpec }
  | { t: "credit_limit"; wallet: number; limit: bigint }
  /** To another wallet of the run, or to itself, or to a wallet nobody ever opens or pays. */
  | { t: "transfer"; from: number; to: number; target: "other" | "self" | "nobody"; amount: AmountSpec }
  | { t: "open"; wallet: number; initial: bigint }
  | { t: "flag"; wallet: number; flagged: boolean }
  /** Delivers one in-flight step; with `again`, a copy stays in flight (a redelivery). */
  | { t: "deliver"; pick: number; again: boolean }
  /** Fires one pending timer, wherever it is. */
  | { t: "fire"; pick: number }
  | { t: "tick"; ms: number };

const WALLETS = ["a", "b", "c", "d"];
const walletIndex = fc.nat({ max: WALLETS.length - 1 });
const amountSpec: fc.Arbitrary<AmountSpec> = fc.oneof(
  { weight: 1, arbitrary: fc.record({ at: fc.constant("value" as const), value: fc.constantFrom(0n, LIMITS.transferAmountMaxMinor, LIMITS.transferAmountMaxMinor + 1n) }) },
  { weight: 3, arbitrary: fc.record({ at: fc.constant("value" as const), value: fc.constantFrom(1n, 50n, 300n) }) },
  { weight: 2, arbitrary: fc.record({ at: fc.constant("available" as const), delta: fc.constantFrom(-1n, 0n, 1n) }) },
);
const action: fc.Arbitrary<Action> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ t: fc.constant("deposit" as const), wallet: walletIndex, amount: fc.constantFrom(1n, 100n, 500n, 1_000n, 1_000n) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant("withdrawal" as const), wallet: walletIndex, amount: amountSpec }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("credit_limit" as const), wallet: walletIndex, limit: fc.constantFrom(0n, 100n, 500n) }) },
  { weight: 6, arbitrary: fc.record({
      t: fc.constant("transfer" as const),
      from: walletIndex,
      to: walletIndex,
      target: fc.constantFrom<"other" | "self" | "nobody">("other", "other", "other", "other", "other", "other", "other", "other", "self", "nobody"),
      amount: amountSpec,
    }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("open" as const), wallet: walletIndex, initial: fc.constantFrom(0n, 100n) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("flag" as const), wallet: walletIndex, flagged: fc.boolean() }) },
  { weight: 10, arbitrary: fc.record({ t: fc.constant("deliver" as const), pick: fc.nat(), again: fc.constantFrom(false, false, false, true) }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant("fire" as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant("tick" as const), ms: fc.integer({ min: 0, max: 3_000 }) }) },
);

/** What the property met, over all runs. */
const met = new Map<string, number>();
const meet = (what: string) => met.set(what, (met.get(what) ?? 0) + 1);

/** A transfer the test asked for and its source accepted. */
interface Accepted {
  id: string;
  from: string;
  to: string;
  amount: bigint;
}

class Run {
  readonly net = new Network();
  /** Money in and out from outside: accepted deposits and openings, less accepted withdrawals. */
  external = 0n;
  readonly accepted: Accepted[] = [];
  /** Replies each destination sent per transfer (credit_applied or credit_refused), by "<from>/<id>". */
  readonly replies = new Map<string, TransferStep[]>();
  /** Outcomes each source decided per transfer. */
  readonly outcomes = new Map<string, Decision[]>();

  constructor(readonly wallets: string[]) {
    for (const w of wallets) this.net.wallet(w);
  }

  private track(seen: Observed, input: WalletInput): void {
    if (seen.type === "terminal") {
      // Only forged answers may be terminal, and the property forges none.
      throw new Error(`terminal ${seen.code} for ${JSON.stringify(input, (_, v) => (typeof v === "bigint" ? `${v}` : v))}`);
    }
    if (seen.type === "repeat") meet("redelivery deduplicated");
    // An opening again with another amount; but no step is ever sent with other content under its id.
    if (seen.type === "conflict") expect(input.type === "command" && input.command.kind === "open").toBe(true);
    if (seen.type !== "decided") return;
    if (seen.rejection) meet(`rejected: ${input.type === "command" ? input.command.kind : input.type === "transfer" ? input.step.step : "timer"} ${seen.rejection}`);
    for (const s of seen.steps) {
      if (s.step === "credit_applied" || s.step === "credit_refused") {
        const key = `${s.fromWalletId}/${s.transferId}`;
        this.replies.set(key, [...(this.replies.get(key) ?? []), s]);
      }
      if (s.step === "cancel_requested") meet("timer sent a cancel");
    }
    if (input.type === "transfer" && (input.step.step === "credit_applied" || input.step.step === "credit_refused")) {
      const key = `${input.step.fromWalletId}/${input.step.transferId}`;
      this.outcomes.set(key, [...(this.outcomes.get(key) ?? []), seen]);
      meet(input.step.step === "credit_applied" ? "settled" : `released: ${input.step.reason}`);
    }
    if (input.type === "transfer" && input.step.step === "cancel_requested") meet(seen.rejection ? "cancel before the credit" : "cancel after the decision");
    if (input.type === "transfer" && input.step.step === "credit_requested" && seen.rejection === "transfer_expired") meet(seen.steps.length === 0 ? "credit after its cancel" : "credit past its deadline");
    if (input.type !== "command" || seen.rejection) return;
    const c = input.command;
    if (c.kind === "deposit") this.external += c.amountMinor;
    if (c.kind === "withdrawal") this.external -= c.amountMinor;
    if (c.kind === "open") this.external += c.initialAmountMinor;
    if (c.kind === "transfer") this.accepted.push({ id: c.operationId, from: c.walletId, to: c.toWalletId, amount: c.amountMinor });
  }

  send(walletId: string, input: WalletInput): void {
    this.track(this.net.send(walletId, input), input);
  }

  command(walletId: string, command: Partial<WalletCommand> & Pick<WalletCommand, "kind">): void {
    const full = { operationId: `op${++ids}`, walletId, eventTimeMs: this.net.nowMs, description: "", reference: "", ...command } as WalletCommand;
    this.send(walletId, { type: "command", source: "commands", command: full });
  }

  run(a: Action): void {
    const net = this.net;
    const w = (i: number) => this.wallets[i % this.wallets.length]!;
    const amount = (spec: AmountSpec, wallet: string) => (spec.at === "value" ? spec.value : available(net.wallet(wallet).state) + spec.delta);
    switch (a.t) {
      case "deposit":
        return this.command(w(a.wallet), { kind: "deposit", amountMinor: a.amount });
      case "withdrawal":
        return this.command(w(a.wallet), { kind: "withdrawal", amountMinor: amount(a.amount, w(a.wallet)) });
      case "credit_limit":
        return this.command(w(a.wallet), { kind: "credit_limit", creditLimitMinor: a.limit });
      case "transfer":
      {
        const from = a.from % this.wallets.length;
        const to = a.target === "nobody" ? "nobody" : a.target === "self" ? w(from) : w(from + 1 + (a.to % (this.wallets.length - 1)));
        return this.command(w(from), { kind: "transfer", toWalletId: to, amountMinor: amount(a.amount, w(from)) });
      }
      case "open":
        return this.command(w(a.wallet), { kind: "open", operationId: "open", userId: "", initialAmountMinor: a.initial });
      case "flag":
        return this.send(w(a.wallet), { type: "flag", change: { eventId: `f${++ids}`, walletId: w(a.wallet), flagged: a.flagged, reason: "manual", eventTimeMs: 0 } });
      case "deliver": {
        if (net.flight.length === 0) return;
        const index = a.pick % net.flight.length;
        const step = net.flight[index]!;
        if (!a.again) net.flight.splice(index, 1);
        else meet("delivered twice");
        this.track(net.step(step), { type: "transfer", step });
        return;
      }
      case "fire": {
        const pending = [...net.wallets.values()].flatMap((wallet) => [...wallet.timers].map(([timerId, dueMs]) => ({ wallet: wallet.id, timerId, dueMs })));
        if (pending.length === 0) return;
        const t = pending[a.pick % pending.length]!;
        net.nowMs = Math.max(net.nowMs, t.dueMs);
        this.send(t.wallet, { type: "timer", fired: { walletId: t.wallet, timerId: t.timerId, dueMs: t.dueMs } });
        return;
      }
      case "tick":
        net.nowMs += a.ms;
        return;
    }
  }

  /** Credited at the destination, not yet settled at the source. */
  creditedNotSettled(): bigint {
    let sum = 0n;
    for (const t of this.accepted) {
      const credited = this.net.wallet(t.to).stepRecord("credit_requested", t.id, t.from);
      if (!credited || credited.reason !== "") continue;
      expect(credited.entryId).toBeGreaterThan(0);
      if (!this.net.wallet(t.from).decided("credit_applied", t.id, t.from)) sum += t.amount;
    }
    return sum;
  }

  /** Checked after every action. */
  check(): void {
    let total = 0n;
    for (const wallet of this.net.wallets.values()) {
      const s = wallet.state;
      // No reversal here: nothing may take available below zero.
      expect(available(s)).toBeGreaterThanOrEqual(0n);
      expect(s.heldMinor).toBeGreaterThanOrEqual(0n);
      expect(s.balanceMinor).toBeLessThanOrEqual(LIMITS.balanceMaxMinor);
      // The entries add up to the balance.
      expect(wallet.entries.reduce((sum, e) => sum + e.amountMinor, 0n)).toBe(s.balanceMinor);
      // What is held is exactly the amounts of the wallet's transfers not answered yet.
      const waiting = this.accepted.filter((t) => t.from === wallet.id && !wallet.decided("credit_applied", t.id, t.from));
      expect(s.heldMinor).toBe(waiting.reduce((sum, t) => sum + t.amount, 0n));
      expect(s.pendingTransferCount).toBe(waiting.length);
      total += s.balanceMinor;
    }
    // Money is conserved: what is credited and not yet settled is counted twice, once.
    expect(total - this.creditedNotSettled()).toBe(this.external);
  }

  /** Delivers everything in flight, in the order given by `picks` (then in order), until nothing is left. */
  settle(picks: number[]): void {
    let i = 0;
    while (this.net.flight.length > 0) {
      this.run({ t: "deliver", pick: picks[i++ % Math.max(picks.length, 1)] ?? 0, again: false });
      this.check();
      expect(i).toBeLessThan(10_000);
    }
  }

  /** At rest: nothing held, every transfer answered once, settled iff credited. */
  checkAtRest(): void {
    expect(this.net.flight).toEqual([]);
    let total = 0n;
    for (const wallet of this.net.wallets.values()) {
      expect(wallet.state.heldMinor).toBe(0n);
      expect(wallet.state.pendingTransferCount).toBe(0);
      expect(wallet.timers.size).toBe(0);
      total += wallet.state.balanceMinor;
    }
    expect(total).toBe(this.external);
    for (const t of this.accepted) {
      const key = `${t.from}/${t.id}`;
      const dest = this.net.wallet(t.to);
      const credit = dest.stepRecord("credit_requested", t.id, t.from);
      const cancel = dest.stepRecord("cancel_requested", t.id, t.from);
      // The destination answered exactly once: by its decision on the request, or by its refusal of a cancel that came first.
      const replies = this.replies.get(key) ?? [];
      expect(replies).toHaveLength(1);
      const reply = replies[0]!;
      // The source decided exactly one outcome, the destination's answer.
      const outcomes = this.outcomes.get(key) ?? [];
      expect(outcomes).toHaveLength(1);
      const outcome = outcomes[0]!;
      const credited = credit !== undefined && credit.reason === "";
      expect(reply.step === "credit_applied").toBe(credited);
      const source = this.net.wallet(t.from).stepRecord("credit_applied", t.id, t.from)!;
      if (credited) {
        meet("at rest: settled");
        expect(outcome.rejection).toBeUndefined();
        expect(source).toMatchObject({ kind: "transfer_out", reason: "", amountMinor: t.amount });
        expect(outcome.entries).toEqual([expect.objectContaining({ kind: "transfer_out", amountMinor: -t.amount, counterpartyWalletId: t.to })]);
        expect(dest.entries.filter((e) => e.operationId === t.id && e.counterpartyWalletId === t.from)).toEqual([expect.objectContaining({ kind: "transfer_in", amountMinor: t.amount })]);
        expect(cancel).toBeUndefined();
      } else {
        meet("at rest: released");
        // Refused for the destination's reason: by its decision on the request, or, if the cancel came first, transfer_expired.
        const reason = cancel !== undefined ? "transfer_expired" : credit!.reason;
        expect(reply.reason).toBe(reason);
        expect(outcome.rejection).toBe(reason);
        expect(source).toMatchObject({ kind: "transfer", reason });
        expect(dest.entries.filter((e) => e.operationId === t.id && e.counterpartyWalletId === t.from)).toEqual([]);
        expect(this.net.wallet(t.from).entries.filter((e) => e.operationId === t.id)).toEqual([]);
      }
    }
  }
}

describe("transfers between wallets, steps in any order", () => {
  test("money is conserved at every step, available never goes below 0, and at rest nothing is held and every transfer has exactly one outcome", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 3 }),
        fc.array(fc.constantFrom(true, true, true, false), { minLength: 3, maxLength: 3 }),
        fc.array(action, { minLength: 1, maxLength: 60, size: "max" }),
        fc.array(fc.nat(), { maxLength: 20 }),
        (count, openAtStart, actions, finalOrder) => {
          const run = new Run(WALLETS.slice(0, count));
          // Some wallets start open with money, others are not there yet.
          run.wallets.forEach((w, i) => {
            if (openAtStart[i]) run.run({ t: "open", wallet: i, initial: 500n });
          });
          run.check();
          for (const a of actions) {
            run.run(a);
            run.check();
          }
          run.settle(finalOrder);
          run.checkAtRest();
        },
      ),
      { numRuns: 1_000 },
    );
    const atLeast: [string, number][] = [
      ["at rest: settled", 500],
      ["at rest: released", 400],
      ["settled", 500],
      ["released: destination_not_found", 150],
      ["released: transfer_expired", 300],
      ["released: balance_would_exceed_max", 5],
      ["timer sent a cancel", 400],
      ["cancel before the credit", 120],
      ["cancel after the decision", 250],
      ["credit after its cancel", 120],
      ["credit past its deadline", 150],
      ["delivered twice", 500],
      ["redelivery deduplicated", 500],
      ["rejected: transfer same_wallet", 200],
      ["rejected: transfer insufficient_funds", 400],
      ["rejected: transfer rejected_fraud", 150],
      ["rejected: transfer amount_exceeds_max", 300],
      ["rejected: transfer amount_must_be_positive", 200],
      ["rejected: withdrawal insufficient_funds", 200],
    ];
    const short = atLeast.filter(([what, n]) => (met.get(what) ?? 0) < n).map(([what, n]) => `${what}: ${met.get(what) ?? 0} < ${n}`);
    expect(short).toEqual([]);
  });
});

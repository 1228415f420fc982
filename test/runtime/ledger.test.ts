// The wallet ledger end to end: the real `balance` group on the runtime, in both
// commit modes, under duplicates, reused ids, redelivery, crashes and restarts. A model
// written from the operations' rules predicts every operation's status, each wallet's
// row, its history (store and `ledger` topic) and the dead letters; it is checked
// after every step against what is committed, and at the end against everything.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import type { DepositEvent, FlagChange } from "../../actors/types.js";
import type { OperationKind, OperationRecord, WalletCommand } from "../../actors/wallet.js";
import { balance, operationRecordCodec } from "../../src/groups/balance.js";
import type { LogRecord } from "../../src/log/log.js";
import { partitionForKey } from "../../src/log/murmur2.js";
import { decodeDeadLetter } from "../../src/runtime/dead-letter.js";
import type { FaultPoints } from "../../src/runtime/processor.js";
import { ChangelogView, LocalTable, type TableReader } from "../../src/runtime/view.js";
import type { StateStore } from "../../src/store/state-store.js";
import { commands, reversalId } from "../../src/topics/commands.js";
import { deposits } from "../../src/topics/deposits.js";
import { flags } from "../../src/topics/flags.js";
import { ledger } from "../../src/topics/ledger.js";
import { config, Harness, PARTITIONS, type Mode } from "./harness.js";

// Two wallets share partition 0; together they span every partition.
const WALLETS = ["alice", "bob", "carol", "dave"];
const AMOUNT_MAX = config.depositAmountMaxMinor;
const BALANCE_MAX = config.balanceMaxMinor;
const CREDIT_LIMIT_MAX = config.creditLimitMaxMinor;
const EVERYTHING = Number.MAX_SAFE_INTEGER;

// ---------------------------------------------------------------------------
// What the test produces, and the model of what the ledger must make of it.
// ---------------------------------------------------------------------------

type Item =
  | { topic: "commands"; command: WalletCommand }
  | { topic: "deposits"; deposit: DepositEvent }
  | { topic: "flags"; change: FlagChange };

/** A record the test produced, where the log put it. */
interface Produced {
  item: Item;
  wallet: string;
  partition: number;
  offset: number;
  value: Uint8Array;
}

interface ModelOp {
  content: string;
  kind: OperationKind;
  /** "applied", or the reason it was refused. */
  outcome: string;
  amount: bigint;
  entryId: number;
  balanceAfter: bigint;
  reversalOf: string;
  description: string;
  reference: string;
  createdMs: number;
  /** Where it was decided: the first record that carried it. */
  position: string;
}

interface ModelEntry {
  walletId: string;
  entryId: number;
  operationId: string;
  kind: OperationKind;
  amountMinor: bigint;
  balanceAfterMinor: bigint;
  eventTimeMs: number;
  description: string;
}

class WalletModel {
  /** Whether anything was decided for it (a row exists). */
  touched = false;
  balance = 0n;
  creditLimit = 0n;
  flagged = false;
  depositCount = 0;
  withdrawalCount = 0;
  reversalCount = 0;
  rejectedDepositCount = 0;
  rejectedCount = 0;
  lastRejection = "";
  lastDepositId = "";
  lastDepositTimeMs: number | null = null;
  readonly ops = new Map<string, ModelOp>();
  readonly entries: ModelEntry[] = [];

  get available(): bigint {
    return this.balance + this.creditLimit;
  }
}

interface Letter {
  topic: string;
  sourceTopic: string;
  sourcePartition: number;
  sourceOffset: number;
  reasonCode: string;
  key: string;
  value: Uint8Array;
}

/** Same id, same content: one operation. Content is what it does (kind, amount, target), not its words. */
function content(kind: OperationKind, value: bigint | string): string {
  return `${kind}/${value}`;
}

class LedgerModel {
  readonly wallets = new Map<string, WalletModel>(WALLETS.map((w) => [w, new WalletModel()]));
  readonly letters: Letter[] = [];
  /** Edge cases the decisions met, by name: for checking that the runs reach them. */
  readonly edges = new Map<string, number>();

  private edge(name: string): void {
    this.edges.set(name, (this.edges.get(name) ?? 0) + 1);
  }

  wallet(id: string): WalletModel {
    return this.wallets.get(id)!;
  }

  apply(p: Produced): void {
    const w = this.wallet(p.wallet);
    const position = `${p.item.topic}:${p.partition}:${p.offset}`;
    const letter = (reasonCode: string) =>
      this.letters.push({ topic: `${p.item.topic}.dlq`, sourceTopic: p.item.topic, sourcePartition: p.partition, sourceOffset: p.offset, reasonCode, key: p.wallet, value: p.value });
    const item = p.item;
    if (item.topic === "flags") {
      // Flag event ids live apart from operation ids, and never repeat here.
      w.touched = true;
      w.flagged = item.change.flagged;
      return;
    }
    let c: WalletCommand;
    if (item.topic === "deposits") {
      const d = item.deposit;
      c = { kind: "deposit", operationId: d.depositId, walletId: d.walletId, amountMinor: d.amountMinor, eventTimeMs: d.eventTimeMs, description: "", reference: "" };
    } else c = item.command;
    // This model covers single-wallet operations; transfers and openings have their own tests.
    if (c.kind === "transfer" || c.kind === "open") throw new Error(`the model does not produce ${c.kind} commands`);
    // "reversal:" ids are a reversal's only: anything else under one is not decodable as a command.
    if (c.kind !== "reversal" && c.operationId.startsWith("reversal:")) {
      letter("operation_id_reserved");
      return;
    }
    const what = c.kind === "reversal" ? content("reversal", c.reversalOf) : content(c.kind, c.kind === "credit_limit" ? c.creditLimitMinor : c.amountMinor);
    const known = w.ops.get(c.operationId);
    if (known) {
      if (known.content !== what) letter(item.topic === "commands" ? "idempotency_key_reused" : "deposit_id_reused_with_different_amount");
      return;
    }
    let reason = "";
    let amount = 0n;
    let delta = 0n;
    switch (c.kind) {
      case "deposit":
        amount = c.amountMinor;
        if (amount <= 0n) reason = "amount_must_be_positive";
        else if (amount > AMOUNT_MAX) reason = "amount_exceeds_max";
        if (reason !== "" && item.topic === "deposits") {
          letter(reason); // terminal: nothing decided, the id stays free
          return;
        }
        if (reason === "" && w.balance + amount > BALANCE_MAX) reason = "balance_would_exceed_max";
        delta = amount;
        break;
      case "withdrawal":
        amount = c.amountMinor;
        if (amount <= 0n) reason = "amount_must_be_positive";
        else if (amount > AMOUNT_MAX) reason = "amount_exceeds_max";
        else if (w.flagged) reason = "rejected_fraud";
        else if (amount > w.available) reason = "insufficient_funds";
        delta = -amount;
        break;
      case "credit_limit":
        amount = c.creditLimitMinor;
        if (amount < 0n) reason = "amount_must_be_positive";
        else if (amount > CREDIT_LIMIT_MAX) reason = "credit_limit_exceeds_max";
        else if (w.balance + amount < 0n) reason = "credit_limit_below_usage";
        break;
      case "reversal": {
        const target = w.ops.get(c.reversalOf);
        // Nothing decided under that id yet: a dead letter, the reversal's id left free.
        if (!target) {
          letter("operation_not_found");
          return;
        }
        if (target.kind !== "deposit" || target.outcome !== "applied") reason = "operation_not_reversible";
        else {
          amount = target.amount;
          delta = -target.amount;
        }
        break;
      }
    }
    w.touched = true;
    if (c.kind !== "deposit" && w.available < 0n && reason !== "") this.edge(`${c.kind} refused in debt`);
    if (c.kind === "withdrawal" && reason === "" && amount === w.available) this.edge("withdrawal of exactly available");
    if (c.kind === "withdrawal" && reason === "insufficient_funds" && amount === w.available + 1n) this.edge("withdrawal one over available");
    if (c.kind === "credit_limit" && reason === "" && w.balance < 0n && amount === -w.balance) this.edge(amount < w.creditLimit ? "limit lowered to exactly the usage" : "limit raised to exactly the usage");
    if (c.kind === "reversal" && reason === "" && w.available - amount < 0n) this.edge("reversal into debt");
    const op: ModelOp = {
      content: what, kind: c.kind, outcome: reason === "" ? "applied" : reason, amount, entryId: 0, balanceAfter: w.balance,
      reversalOf: c.kind === "reversal" ? c.reversalOf : "", description: c.description, reference: c.reference, createdMs: c.eventTimeMs, position,
    };
    w.ops.set(c.operationId, op);
    if (reason !== "") {
      w.rejectedCount++;
      if (c.kind === "deposit") w.rejectedDepositCount++;
      w.lastRejection = reason;
      return;
    }
    if (c.kind === "credit_limit") {
      w.creditLimit = amount;
      return;
    }
    w.balance += delta;
    op.entryId = w.entries.length + 1;
    op.balanceAfter = w.balance;
    w.entries.push({
      walletId: p.wallet, entryId: op.entryId, operationId: c.operationId, kind: c.kind, amountMinor: delta,
      balanceAfterMinor: w.balance, eventTimeMs: c.eventTimeMs, description: c.description,
    });
    if (c.kind === "deposit") {
      w.depositCount++;
      w.lastDepositId = c.operationId;
      w.lastDepositTimeMs = c.eventTimeMs;
    } else if (c.kind === "withdrawal") w.withdrawalCount++;
    else w.reversalCount++;
  }
}

// ---------------------------------------------------------------------------
// Comparing the runtime with the model.
// ---------------------------------------------------------------------------

/** The model of exactly the records below the balance group's committed progress. */
function committedModel(h: Harness, produced: Produced[]): LedgerModel {
  const model = new LedgerModel();
  const progress = new Map<string, number>();
  const committed = (p: Produced) => {
    const key = `${p.item.topic}/${p.partition}`;
    if (!progress.has(key)) progress.set(key, h.store.progress("balance", { topic: p.item.topic, partition: p.partition }));
    return p.offset < progress.get(key)!;
  };
  for (const p of produced) if (committed(p)) model.apply(p);
  return model;
}

function decodeRecord(detail: Uint8Array | null): OperationRecord {
  expect(detail).not.toBeNull();
  return operationRecordCodec.decode(new Uint8Array(detail!));
}

/** Every operation id the run used for a wallet, decided or not. */
function idsOf(produced: Produced[], wallet: string): Set<string> {
  const ids = new Set<string>();
  for (const p of produced) {
    if (p.wallet !== wallet) continue;
    if (p.item.topic === "commands") ids.add(p.item.command.operationId);
    if (p.item.topic === "deposits") ids.add(p.item.deposit.depositId);
  }
  return ids;
}

/**
 * The store against the model: every operation's status and record, each wallet's row
 * and its history. Returns the recorded time of each operation that wrote an entry.
 */
function compareStore(store: StateStore, model: LedgerModel, produced: Produced[]): Map<string, Map<string, number>> {
  const times = new Map<string, Map<string, number>>();
  for (const walletId of WALLETS) {
    const w = model.wallet(walletId);
    const decided = new Map<string, number>();
    times.set(walletId, decided);
    // Statuses: each decided id once, with its first decision; the others unknown.
    let lastDecidedMs = 0;
    for (const id of idsOf(produced, walletId)) {
      const row = store.appliedEvent("balance", walletId, id);
      const op = w.ops.get(id);
      if (!op) {
        expect(row).toBeUndefined();
        continue;
      }
      expect(row?.outcome).toBe(op.outcome);
      const record = decodeRecord(row!.detail);
      expect({ ...record, decidedMs: 0 }).toEqual({
        kind: op.kind, amountMinor: op.amount, reason: op.outcome === "applied" ? "" : op.outcome, createdMs: op.createdMs, decidedMs: 0,
        description: op.description, reference: op.reference, position: op.position, entryId: op.entryId, balanceAfterMinor: op.balanceAfter, reversalOf: op.reversalOf,
        operationId: "", counterpartyWalletId: "", pending: false, expiresMs: null,
      });
      lastDecidedMs = Math.max(lastDecidedMs, record.decidedMs);
      if (op.entryId > 0) decided.set(id, record.decidedMs);
    }
    // The row.
    const stored = store.row("balance", walletId);
    if (!w.touched) {
      expect(stored).toBeUndefined();
      continue;
    }
    const state = balance.table.codec.decode(stored!.value);
    expect(state).toEqual({
      balanceMinor: w.balance, heldMinor: 0n, creditLimitMinor: w.creditLimit, flagged: w.flagged,
      depositCount: w.depositCount, withdrawalCount: w.withdrawalCount, reversalCount: w.reversalCount,
      rejectedCount: w.rejectedDepositCount, rejectedOperationCount: w.rejectedCount,
      lastDepositId: w.lastDepositId, lastDepositTimeMs: w.lastDepositTimeMs, lastRejectionCode: w.lastRejection,
      entryCount: w.entries.length, lastRecordedMs: lastDecidedMs,
      transferOutCount: 0, transferInCount: 0, pendingTransferCount: 0, opened: false, userId: "", initialAmountMinor: 0n, openedMs: null,
    });
    // The history, newest first, and as of a time.
    const history = store.entries("balance", walletId, EVERYTHING, 1000);
    expect(history.map((r) => [r.eventId, r.outcome, decodeRecord(r.detail).entryId])).toEqual(
      w.entries.map((e) => [e.operationId, "applied", e.entryId]).reverse(),
    );
    let running = 0n;
    for (const e of w.entries) {
      running += e.amountMinor;
      expect(e.balanceAfterMinor).toBe(running);
    }
    expect(running).toBe(state.balanceMinor);
    expect(store.entries("balance", walletId, 2, 1000).map((r) => r.eventId)).toEqual(w.entries.slice(0, 1).map((e) => e.operationId));
    const at = w.entries.map((e) => decided.get(e.operationId)!);
    for (let i = 1; i < at.length; i++) expect(at[i]!).toBeGreaterThanOrEqual(at[i - 1]!);
    at.forEach((ms, i) => {
      // The newest entry recorded at or before the i-th's time: the last with that time.
      const newest = at.lastIndexOf(ms);
      expect(store.entryAt("balance", walletId, ms)?.eventId).toBe(w.entries[newest]!.operationId);
      if (i === 0) expect(store.entryAt("balance", walletId, ms - 1)).toBeUndefined();
    });
    if (w.entries.length === 0) expect(store.entryAt("balance", walletId, EVERYTHING)).toBeUndefined();
  }
  return times;
}

function readAll(h: Harness, topic: string): LogRecord[] {
  return Array.from({ length: PARTITIONS }, (_, partition) => h.log.read({ topic, partition, offset: 0 }, 1_000_000)).flat();
}

/** The `ledger` topic: each wallet's entries, deduped, against the model and the store's times. */
function compareLedgerTopic(h: Harness, model: LedgerModel, times: Map<string, Map<string, number>>): void {
  const seen = new Map<string, ReturnType<typeof ledger.codec.decode>>();
  const firstOrder = new Map<string, number[]>(WALLETS.map((w) => [w, []]));
  let duplicates = 0;
  for (const record of readAll(h, ledger.name)) {
    const entry = ledger.codec.decode(record.value);
    expect(record.key).toBe(entry.walletId);
    expect(record.partition).toBe(partitionForKey(entry.walletId, PARTITIONS));
    const key = `${entry.walletId}/${entry.entryId}`;
    const before = seen.get(key);
    if (before) {
      // A re-sent outbox: the same entry, byte for byte.
      expect(entry).toEqual(before);
      duplicates++;
      continue;
    }
    seen.set(key, entry);
    firstOrder.get(entry.walletId)!.push(entry.entryId);
  }
  // One transaction per batch on the embedded log: nothing is ever sent twice.
  if (h.mode === "shared") expect(duplicates).toBe(0);
  for (const walletId of WALLETS) {
    const w = model.wallet(walletId);
    // In the order of the wallet's partition: 1, 2, 3, ...
    expect(firstOrder.get(walletId)).toEqual(w.entries.map((e) => e.entryId));
    const published = [...seen.values()].filter((e) => e.walletId === walletId).sort((a, b) => a.entryId - b.entryId);
    expect(published).toEqual(w.entries.map((e) => ({ ...e, recordedMs: times.get(walletId)!.get(e.operationId)!, counterpartyWalletId: "" })));
  }
}

/** The dead letters, deduped by source record, against the model's. */
function compareDeadLetters(h: Harness, model: LedgerModel): void {
  const letters = new Map<string, Letter>();
  let duplicates = 0;
  for (const topic of [commands.name, deposits.name, flags.name]) {
    for (const record of readAll(h, `${topic}.dlq`)) {
      const l = decodeDeadLetter(record.value);
      expect(l.group).toBe("balance");
      expect(record.partition).toBe(l.sourcePartition);
      const letter: Letter = {
        topic: record.topic, sourceTopic: l.sourceTopic, sourcePartition: l.sourcePartition, sourceOffset: Number(l.sourceOffset),
        reasonCode: l.reasonCode, key: l.key, value: new Uint8Array(l.value),
      };
      const key = `${letter.sourceTopic}/${letter.sourcePartition}/${letter.sourceOffset}`;
      const before = letters.get(key);
      if (before) {
        expect(letter).toEqual(before);
        duplicates++;
      } else letters.set(key, letter);
    }
  }
  if (h.mode === "shared") expect(duplicates).toBe(0);
  const order = (a: Letter, b: Letter) => a.sourceTopic.localeCompare(b.sourceTopic) || a.sourcePartition - b.sourcePartition || a.sourceOffset - b.sourceOffset;
  expect([...letters.values()].sort(order)).toEqual([...model.letters].sort(order));
}

/** The readers the API uses (the table in place, or a changelog view) against the model. */
async function compareViews(h: Harness, model: LedgerModel, produced: Produced[]): Promise<void> {
  let view: TableReader<{ balanceMinor: bigint; entryCount: number }, OperationRecord>;
  if (h.mode === "shared") view = new LocalTable(balance, h.store);
  else {
    const changelogView = new ChangelogView(balance, h.log, h.store);
    for (let idle = 0; idle < 3; ) idle = (await changelogView.step(0)) === 0 ? idle + 1 : 0;
    await changelogView.stop();
    view = changelogView;
  }
  for (const walletId of WALLETS) {
    const w = model.wallet(walletId);
    expect(view.get(walletId)?.balanceMinor).toBe(w.touched ? w.balance : undefined);
    for (const id of idsOf(produced, walletId)) {
      const op = w.ops.get(id);
      const applied = view.applied(walletId, id);
      expect(applied?.outcome).toBe(op?.outcome);
      expect(applied?.record?.entryId).toBe(op?.entryId);
    }
    expect(view.entries(walletId, EVERYTHING, 1000).map((a) => a.eventId)).toEqual(w.entries.map((e) => e.operationId).reverse());
    expect(view.entryAt(walletId, EVERYTHING)?.eventId).toBe(w.entries.at(-1)?.operationId);
  }
}

// ---------------------------------------------------------------------------
// Random runs: actions are intents, resolved against the model of everything produced
// so far, so amounts hit the edges of the state each operation will meet.
// ---------------------------------------------------------------------------

type AmountSpec = { at: "available"; delta: bigint } | { at: "value"; value: bigint };
type LimitSpec = { at: "usage"; delta: bigint } | { at: "value"; value: bigint };
type IdSpec = { fresh: true } | { fresh: false; pick: number };
type TargetSpec = { of: "deposit" | "any"; pick: number } | { of: "unknown" };

type CommandSpec = { wallet: string; id: IdSpec; eventTimeMs: number } & (
  | { kind: "deposit" | "withdrawal"; amount: AmountSpec }
  /**
   * Commands that lead to the edges of debt: by "reversal", a deposit, a withdrawal of
   * all that is available and the deposit's reversal (debt); by "credit", a credit limit
   * of 300, a withdrawal that leaves 200 available (a usage of 100), and the limit set
   * to the usage plus `delta` (lowered to exactly it, or one under, or one over).
   */
  | { kind: "debt"; via: "reversal" | "credit"; amount: bigint; delta: bigint }
  | { kind: "credit_limit"; limit: LimitSpec }
  | { kind: "reversal"; target: TargetSpec }
);

type Action =
  | { kind: "produce"; commands: CommandSpec[] }
  /** Earlier commands again, as a producer that re-sends; sometimes with other words, which change nothing. */
  | { kind: "resend"; picks: number[]; reworded: boolean }
  /** A deposit on `deposits` (a trusted producer), with the runtime drained before and after. */
  | { kind: "deposit"; wallet: string; id: IdSpec; amount: bigint }
  | { kind: "flag"; wallet: string; flagged: boolean }
  | { kind: "step" }
  | { kind: "crash"; at: keyof FaultPoints }
  | { kind: "transient" }
  /** A fresh processor (a restarted process) that reads the partitions again from the stored progress. */
  | { kind: "restart" }
  | { kind: "move" };

const wallet = fc.constantFrom(...WALLETS);
const delta = fc.constantFrom(-1n, 0n, 1n);
const idSpec: fc.Arbitrary<IdSpec> = fc.oneof(
  { weight: 4, arbitrary: fc.constant({ fresh: true as const }) },
  { weight: 1, arbitrary: fc.record({ fresh: fc.constant(false as const), pick: fc.nat() }) },
);
const value = (values: bigint[]) => fc.record({ at: fc.constant("value" as const), value: fc.constantFrom(...values) });
const amountSpec: fc.Arbitrary<AmountSpec> = fc.oneof(
  value([0n, -1n, 1n, 50n, 100n, 250n, AMOUNT_MAX, AMOUNT_MAX + 1n]),
  fc.record({ at: fc.constant("available" as const), delta }),
);
const limitSpec: fc.Arbitrary<LimitSpec> = fc.oneof(
  { weight: 1, arbitrary: value([0n, -1n, 100n, 300n, CREDIT_LIMIT_MAX, CREDIT_LIMIT_MAX + 1n]) },
  // Down to exactly the usage (available 0), or one under it.
  { weight: 2, arbitrary: fc.record({ at: fc.constant("usage" as const), delta }) },
);
const targetSpec: fc.Arbitrary<TargetSpec> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ of: fc.constant("deposit" as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ of: fc.constant("any" as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.constant({ of: "unknown" as const }) },
);
const eventTimeMs = fc.constantFrom(0, 1_000, 1_700_000_000_000);
const commandSpec: fc.Arbitrary<CommandSpec> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ wallet, id: idSpec, eventTimeMs, kind: fc.constant("deposit" as const), amount: amountSpec }) },
  { weight: 3, arbitrary: fc.record({ wallet, id: idSpec, eventTimeMs, kind: fc.constant("withdrawal" as const), amount: amountSpec }) },
  { weight: 2, arbitrary: fc.record({ wallet, id: idSpec, eventTimeMs, kind: fc.constant("credit_limit" as const), limit: limitSpec }) },
  { weight: 3, arbitrary: fc.record({ wallet, id: idSpec, eventTimeMs, kind: fc.constant("reversal" as const), target: targetSpec }) },
  { weight: 1, arbitrary: fc.record({ wallet, id: idSpec, eventTimeMs, kind: fc.constant("debt" as const), via: fc.constantFrom<"reversal" | "credit">("reversal", "credit"), amount: fc.constantFrom(1n, 100n), delta }) },
);

function actions(mode: Mode): fc.Arbitrary<Action[]> {
  const kinds: { weight: number; arbitrary: fc.Arbitrary<Action> }[] = [
    { weight: 6, arbitrary: fc.record({ kind: fc.constant("produce" as const), commands: fc.array(commandSpec, { minLength: 1, maxLength: 4 }) }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant("resend" as const), picks: fc.array(fc.nat(), { minLength: 1, maxLength: 3 }), reworded: fc.boolean() }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant("deposit" as const), wallet, id: idSpec, amount: fc.constantFrom(0n, 1n, 100n, AMOUNT_MAX + 1n) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant("flag" as const), wallet, flagged: fc.boolean() }) },
    { weight: 5, arbitrary: fc.constant({ kind: "step" as const }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant("crash" as const), at: fc.constantFrom<keyof FaultPoints>("beforeCommit", "afterCommit", "afterPublish") }) },
    { weight: 1, arbitrary: fc.constant({ kind: "transient" as const }) },
    { weight: 1, arbitrary: fc.constant({ kind: "restart" as const }) },
  ];
  // On Kafka's terms a partition may also move to an instance with an empty store. An
  // instance that comes back with its old store is not among the actions: its restore
  // keeps the decisions of batches it never published (restore.ts, resume()), so its
  // store and the `ledger` topic can disagree.
  if (mode === "outbox") kinds.push({ weight: 1, arbitrary: fc.constant({ kind: "move" as const }) });
  return fc.array(fc.oneof(...kinds), { minLength: 1, maxLength: 40, size: "max" });
}

/** A run: the harness, what was produced, and the model of all of it. */
class Run {
  readonly produced: Produced[] = [];
  model = new LedgerModel();
  private fresh = 0;
  private flagCount = 0;

  constructor(readonly h: Harness) {}

  private commandsSent(): WalletCommand[] {
    return this.produced.flatMap((p) => (p.item.topic === "commands" ? [p.item.command] : []));
  }

  private id(spec: IdSpec): string {
    if (!spec.fresh) {
      // An id used before, by any wallet: the same wallet's is a repeat or a reuse.
      const used = this.produced.flatMap((p) => (p.item.topic === "commands" ? [p.item.command.operationId] : p.item.topic === "deposits" ? [p.item.deposit.depositId] : []));
      if (used.length > 0) return used[spec.pick % used.length]!;
    }
    return `op-${++this.fresh}`;
  }

  private resolve(spec: Exclude<CommandSpec, { kind: "debt" }>): WalletCommand {
    const w = this.model.wallet(spec.wallet);
    const base = { walletId: spec.wallet, eventTimeMs: spec.eventTimeMs, reference: spec.eventTimeMs === 0 ? "" : `ref-${this.fresh}` };
    const amount = (a: AmountSpec) => (a.at === "value" ? a.value : w.available + a.delta);
    switch (spec.kind) {
      case "deposit":
      case "withdrawal": {
        const operationId = this.id(spec.id);
        return { ...base, operationId, description: `${spec.kind} ${operationId}`, kind: spec.kind, amountMinor: amount(spec.amount) };
      }
      case "credit_limit": {
        const operationId = this.id(spec.id);
        const limit = spec.limit.at === "value" ? spec.limit.value : -w.balance + spec.limit.delta;
        return { ...base, operationId, description: `limit ${operationId}`, kind: "credit_limit", creditLimitMinor: limit };
      }
      case "reversal": {
        const t = spec.target;
        let of = `ghost-${++this.fresh}`;
        if (t.of !== "unknown") {
          // Of a deposit: one not reversed yet, if there is one (reversing one again is a repeat).
          const ops = [...w.ops.entries()];
          const open = ops.filter(([id, op]) => op.kind === "deposit" && op.outcome === "applied" && !w.ops.has(reversalId(id)));
          const pool = t.of === "any" ? ops : open.length > 0 ? open : ops.filter(([, op]) => op.kind === "deposit");
          if (pool.length > 0) of = pool[t.pick % pool.length]![0];
        }
        return { ...base, operationId: reversalId(of), description: `reversal of ${of}`, kind: "reversal", reversalOf: of };
      }
    }
  }

  private async produce(items: Item[]): Promise<void> {
    const records = items.map((item) => {
      if (item.topic === "commands") return { topic: commands.name, key: commands.key(item.command), value: commands.codec.encode(item.command) };
      if (item.topic === "deposits") return { topic: deposits.name, key: deposits.key(item.deposit), value: deposits.codec.encode(item.deposit) };
      return { topic: flags.name, key: flags.key(item.change), value: flags.codec.encode(item.change) };
    });
    // The log partitions by key (murmur2), as a Kafka producer does.
    const positions = await this.h.log.produce(records);
    items.forEach((item, i) => {
      const position = positions[i]!;
      expect(position.partition).toBe(partitionForKey(records[i]!.key, PARTITIONS));
      const p: Produced = { item, wallet: records[i]!.key, partition: position.partition, offset: position.offset, value: records[i]!.value };
      this.produced.push(p);
      this.model.apply(p);
    });
  }

  async run(a: Action): Promise<void> {
    const h = this.h;
    switch (a.kind) {
      case "produce": {
        // One at a time through the model, so that each resolves against the state the
        // ones before it leave; produced together, in one request.
        const items: Item[] = [];
        const add = (spec: Exclude<CommandSpec, { kind: "debt" }>) => {
          const command = this.resolve(spec);
          items.push({ topic: "commands", command });
          // Applied here only to resolve the next spec against the state this one leaves.
          this.model.apply({ item: { topic: "commands", command }, wallet: command.walletId, partition: -1, offset: -1, value: new Uint8Array() });
          return command;
        };
        for (const spec of a.commands) {
          if (spec.kind !== "debt") {
            add(spec);
            continue;
          }
          const common = { wallet: spec.wallet, id: { fresh: true as const }, eventTimeMs: spec.eventTimeMs };
          if (spec.via === "credit") {
            add({ ...common, kind: "credit_limit", limit: { at: "value", value: 300n } });
            add({ ...common, kind: "withdrawal", amount: { at: "available", delta: -200n } });
            add({ ...common, kind: "credit_limit", limit: { at: "usage", delta: spec.delta } });
            continue;
          }
          const d = add({ ...common, kind: "deposit", amount: { at: "value", value: spec.amount } });
          add({ ...common, kind: "withdrawal", amount: { at: "available", delta: 0n } });
          items.push({ topic: "commands", command: { ...d, operationId: reversalId(d.operationId), description: "bounced", kind: "reversal", reversalOf: d.operationId } });
          this.model.apply({ item: items.at(-1)!, wallet: d.walletId, partition: -1, offset: -1, value: new Uint8Array() });
        }
        // Then the model is rebuilt from what the log really holds, positions included.
        this.model = new LedgerModel();
        for (const p of this.produced) this.model.apply(p);
        await this.produce(items);
        return;
      }
      case "resend": {
        const sent = this.commandsSent();
        if (sent.length === 0) return;
        await this.produce(a.picks.map((pick) => {
          const c = sent[pick % sent.length]!;
          return { topic: "commands" as const, command: a.reworded ? { ...c, description: `${c.description} (again)`, eventTimeMs: c.eventTimeMs + 1 } : c };
        }));
        return;
      }
      case "deposit":
      case "flag": {
        // Only `commands` is ordered against the test's other records: drain around
        // other inputs, so that the ledger reads them where the model does.
        await h.drain();
        if (a.kind === "deposit") {
          await this.produce([{ topic: "deposits", deposit: { depositId: this.id(a.id), walletId: a.wallet, amountMinor: a.amount, eventTimeMs: 5_000 } }]);
        } else {
          // Flag ids that look like operation ids: they must not collide with them.
          await this.produce([{ topic: "flags", change: { eventId: `op-${++this.flagCount}`, walletId: a.wallet, flagged: a.flagged, reason: "manual", eventTimeMs: 0 } }]);
        }
        await h.drain();
        return;
      }
      case "step":
        await h.step("balance");
        return;
      case "crash":
        await h.step("balance", a.at);
        return;
      case "transient":
        await h.stepWithTransientFailure("balance");
        return;
      case "restart": {
        const replayer = h.fresh("balance", {});
        await h.processors.get("balance")!.stop();
        h.processors.set("balance", replayer);
        return;
      }
      case "move":
        await h.moveToNewInstance();
        return;
    }
  }
}

/** What a property's runs met, over all of them: a property that never meets a case tests nothing of it. */
interface Met {
  conflicts: number;
  repeats: number;
  edges: Map<string, number>;
  letters: Set<string>;
  outcomes: Set<string>;
}

function tally(met: Met, run: Run): void {
  const ids = new Map<string, number>();
  for (const p of run.produced) {
    if (p.item.topic !== "commands") continue;
    const key = `${p.wallet}/${p.item.command.operationId}`;
    ids.set(key, (ids.get(key) ?? 0) + 1);
  }
  met.repeats += [...ids.values()].filter((n) => n > 1).length;
  for (const l of run.model.letters) met.letters.add(l.reasonCode);
  met.conflicts += run.model.letters.filter((l) => l.reasonCode === "idempotency_key_reused").length;
  for (const w of run.model.wallets.values()) for (const op of w.ops.values()) met.outcomes.add(`${op.kind}:${op.outcome}`);
  for (const [name, n] of run.model.edges) met.edges.set(name, (met.edges.get(name) ?? 0) + n);
}

function expectMet(met: Met): void {
  expect(met.conflicts).toBeGreaterThan(30);
  expect(met.repeats).toBeGreaterThan(150);
  const edges = ["withdrawal of exactly available", "withdrawal one over available", "limit raised to exactly the usage", "limit lowered to exactly the usage", "reversal into debt", "withdrawal refused in debt", "credit_limit refused in debt"];
  const rare = edges.filter((edge) => (met.edges.get(edge) ?? 0) <= 2);
  expect(rare).toEqual([]);
  expect([...met.letters].sort()).toEqual(["amount_exceeds_max", "amount_must_be_positive", "deposit_id_reused_with_different_amount", "idempotency_key_reused", "operation_id_reserved", "operation_not_found"]);
  const outcomes = [
    "deposit:applied", "withdrawal:applied", "credit_limit:applied", "reversal:applied", "withdrawal:insufficient_funds", "withdrawal:rejected_fraud",
    "credit_limit:credit_limit_below_usage", "credit_limit:credit_limit_exceeds_max", "reversal:operation_not_reversible", "deposit:amount_must_be_positive", "withdrawal:amount_exceeds_max",
  ];
  for (const outcome of outcomes) expect([...met.outcomes]).toContain(outcome);
}

describe("the wallet ledger on the runtime", () => {
  test("the wallets span every partition, two of them sharing one", () => {
    const partitions = WALLETS.map((w) => partitionForKey(w, PARTITIONS));
    expect(new Set(partitions).size).toBe(PARTITIONS);
    expect(partitions.length).toBeGreaterThan(new Set(partitions).size);
  });

  for (const mode of ["shared", "outbox"] as Mode[]) {
    test(`${mode}: statuses, balances, history, the ledger topic and dead letters match a model, through duplicates, reused ids, redelivery and crashes`, async () => {
      const met: Met = { conflicts: 0, repeats: 0, edges: new Map(), letters: new Set(), outcomes: new Set() };
      await fc.assert(
        fc.asyncProperty(actions(mode), async (script) => {
          const h = new Harness(mode, [balance]);
          const run = new Run(h);
          try {
            await h.init();
            for (const a of script) {
              await run.run(a);
              // After every step, what is committed is the model of exactly the records
              // below the committed progress: each decided once, none lost.
              compareStore(h.store, committedModel(h, run.produced), run.produced);
            }
            await h.drain();
            const times = compareStore(h.store, run.model, run.produced);
            compareLedgerTopic(h, run.model, times);
            compareDeadLetters(h, run.model);
            // Single-wallet operations send no transfer step, announce no opening, set no timer.
            for (const topic of ["transfers", "transfers.dlq", "user-wallets", "balance-timers", "balance-timers.dlq"]) expect(readAll(h, topic)).toEqual([]);
            await compareViews(h, run.model, run.produced);
            tally(met, run);
          } finally {
            h.close();
          }
        }),
        { numRuns: 300 },
      );
      // The runs did meet what they are meant to.
      expectMet(met);
    }, 300_000);
  }

});

describe("the wallet ledger on the runtime, worked through", () => {
  for (const mode of ["shared", "outbox"] as Mode[]) {
    test(`${mode}: a reused id is dead-lettered with idempotency_key_reused and the original keeps its status; a reversal twice is one`, async () => {
      const h = new Harness(mode, [balance]);
      try {
        await h.init();
        const at = { walletId: "carol", eventTimeMs: 1_000, description: "", reference: "" };
        // Produced directly, as the API would.
        const sent: WalletCommand[] = [
          { ...at, operationId: "d1", kind: "deposit", amountMinor: 100n },
          { ...at, operationId: "w1", kind: "withdrawal", amountMinor: 30n },
          { ...at, operationId: "w1", kind: "withdrawal", amountMinor: 31n },
          { ...at, operationId: "d1", kind: "deposit", amountMinor: 100n },
          { ...at, operationId: reversalId("d1"), kind: "reversal", reversalOf: "d1" },
          { ...at, operationId: reversalId("d1"), kind: "reversal", reversalOf: "d1" },
          { ...at, operationId: "w2", kind: "withdrawal", amountMinor: 1n },
        ];
        const positions = await h.log.produce(sent.map((c) => ({ topic: commands.name, key: commands.key(c), value: commands.codec.encode(c) })));
        await h.step("balance", "afterCommit");
        await h.drain();
        const status = (id: string) => h.store.appliedEvent("balance", "carol", id)?.outcome;
        expect([status("d1"), status("w1"), status(reversalId("d1")), status("w2")]).toEqual(["applied", "applied", "applied", "insufficient_funds"]);
        expect(decodeRecord(h.store.appliedEvent("balance", "carol", "w1")!.detail).amountMinor).toBe(30n);
        const state = balance.table.codec.decode(h.store.row("balance", "carol")!.value);
        expect([state.balanceMinor, state.entryCount]).toEqual([-30n, 3]);
        const letters = readAll(h, "commands.dlq").map((r) => decodeDeadLetter(r.value));
        expect(letters.map((l) => [l.reasonCode, Number(l.sourceOffset)])).toEqual([["idempotency_key_reused", positions[2]!.offset]]);
        const entries = readAll(h, ledger.name).map((r) => ledger.codec.decode(r.value));
        const distinct = [...new Map(entries.map((e) => [e.entryId, e])).values()];
        expect(distinct.map((e) => [e.entryId, e.operationId, e.amountMinor, e.balanceAfterMinor])).toEqual([
          [1, "d1", 100n, 100n],
          [2, "w1", -30n, 70n],
          [3, "reversal:d1", -100n, -30n],
        ]);
      } finally {
        h.close();
      }
    });
  }
});

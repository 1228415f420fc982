import { isTerminal, type Actor, type ActorContext, type Decided, type FiredTimer } from "../../actors/types.js";
import type { LogRecord, ProduceRecord, RecordPosition, TopicPartition } from "../log/log.js";
import { partitionForKey } from "../log/murmur2.js";
import type { AppliedId, TableRow } from "../store/state-store.js";
import { batchRecord, rowRecord, versionOf, type AppliedEvent, type Through, type TimerChange } from "./changelog.js";
import { DecodeError } from "./codec.js";
import { deadLetterRecord } from "./dead-letter.js";
import { AssertionError, assert, type DeadLetterReason } from "./errors.js";
import { scopedId, type AnyGroup, type Input } from "./group.js";
import type { TimerRow } from "./timers.js";

const EMPTY = new Uint8Array(0);

export const tpKey = (tp: TopicPartition) => `${tp.topic}\u0000${tp.partition}`;

/** What a batch needs to read while it is built: the state it starts from. */
export interface BatchReads {
  /** A wallet's state, or the actor's initial state if it has none. */
  state(walletId: string): unknown;
  /** How an id was applied before, if it was: its fingerprint and recorded detail. */
  applied(walletId: string, eventId: string): { fingerprint: string; detail: Uint8Array | null } | undefined;
  /** The next offset to apply, per assigned input partition. */
  position(tp: TopicPartition): number;
  /** The clock actors see for this batch (ActorContext.nowMs). */
  nowMs: number;
  /** When a pending timer of a wallet is due, if it is pending. */
  timer(walletId: string, timerId: string): number | undefined;
  /**
   * Kafka (a committer that restores on assign): the changelog offset of a partition
   * below which every batch's output was delivered, for the batch record to carry with
   * its own output. Undefined: output is not carried (the embedded log commits it).
   */
  deliveredBefore?(partition: number): number;
  /** How far an event's time may be ahead of its record's timestamp; further is dead-lettered. */
  eventTimeAheadMaxMs?: number;
}

/** A processed batch, ready to commit: state changes, progress and output. */
export interface Batch {
  /** Input progress the batch starts from and ends at, per input partition it read. */
  from: RecordPosition[];
  to: RecordPosition[];
  /** The final state of each wallet the batch changed, decoded and encoded. */
  states: Map<string, { state: unknown; partition: number }>;
  rows: TableRow[];
  applied: AppliedId[];
  /** Timers set and cleared, in order. */
  timers: TimerRow[];
  /** What to append to the log, by the input partition whose records produced it. */
  output: Map<number, ProduceRecord[]>;
}

interface WalletChange {
  state: unknown;
  partition: number;
}

/**
 * Runs a group's actor over a batch of records, in memory: nothing is written here.
 * Each record is admitted (decoded, in its wallet's partition, not a repeat), then
 * decided by the actor, and its outcome collected; at the end the changes are encoded
 * as rows, changelog records and progress. A record that cannot be admitted or that
 * the actor refuses as terminal becomes a dead letter in the batch's output.
 */
export class BatchBuilder {
  private readonly inputs: Map<string, Input<unknown>>;
  private readonly emitTopics: Set<string>;
  private readonly next = new Map<string, RecordPosition>();
  private readonly changes = new Map<string, WalletChange>();
  /** Ids applied in this batch: their fingerprint and record. */
  private readonly seen = new Map<string, { fingerprint: string; record: unknown }>();
  private readonly applied = new Map<number, (AppliedEvent & { entry?: { seq: number; recordedMs: number } })[]>();
  private readonly output = new Map<number, ProduceRecord[]>();
  /** Timers set (due) or cleared (null) in this batch, by wallet and timer id, and in order per partition. */
  private readonly timerStates = new Map<string, number | null>();
  private readonly timerChanges = new Map<number, TimerChange[]>();

  constructor(
    private readonly group: AnyGroup,
    private readonly actor: Actor<unknown, unknown, unknown, unknown>,
    private readonly partitions: number,
    private readonly reads: BatchReads,
  ) {
    this.inputs = new Map(group.inputs.map((input) => [input.topic.name, input]));
    this.emitTopics = new Set(group.emits.map((topic) => topic.name));
  }

  add(record: LogRecord): void {
    const key = tpKey(record);
    const position = this.next.get(key)?.offset ?? this.reads.position(record);
    if (record.offset < position) return; // applied before: a redelivery
    this.next.set(key, { topic: record.topic, partition: record.partition, offset: record.offset + 1 });
    const admitted = this.admit(record);
    if ("code" in admitted) return this.deadLetter(record, admitted);
    if (admitted.repeat) return;
    if (admitted.skip) return this.skip(record, admitted);
    if (record.topic === this.group.timers?.name) {
      // A firing of a timer no longer pending (fired, cleared, set anew) is skipped. A
      // pending one is cleared whatever the actor makes of it, so that a firing it
      // refuses is dead-lettered once rather than produced again and again.
      const fired = admitted.value as FiredTimer;
      if (this.timerDue(record.key, fired.timerId) !== fired.dueMs) return this.skip(record, admitted);
      this.setTimer(record.key, record.partition, fired.timerId, null);
    }
    const decision = this.decide(record, admitted.event);
    if ("code" in decision) return this.deadLetter(record, decision);
    this.changes.set(record.key, { state: decision.state, partition: record.partition });
    this.seen.set(`${record.key}\u0000${admitted.id}`, { fingerprint: admitted.fingerprint, record: decision.record });
    const records = this.group.records;
    assert(decision.record === undefined || records, `group ${this.group.name} recorded a decision but declares no records`);
    const detail = decision.record === undefined ? EMPTY : records!.codec.encode(decision.record);
    this.list(this.applied, record.partition).push({
      walletId: record.key, eventId: admitted.id, fingerprint: admitted.fingerprint, outcome: decision.rejection ?? "applied", detail,
      entry: decision.record === undefined ? undefined : records!.entry(decision.record),
    });
    for (const out of decision.emits) this.list(this.output, record.partition).push(this.route(out));
    for (const timer of decision.timers ?? []) {
      assert(this.group.timers, `group ${this.group.name} set a timer but declares no onTimer`);
      this.setTimer(record.key, record.partition, timer.id, timer.dueMs);
    }
  }

  /**
   * Not this group's to decide, but its id is bound all the same: the same id coming
   * again as something this group does read is a conflict here too.
   */
  private skip(record: LogRecord, admitted: { id: string; fingerprint: string }): void {
    this.seen.set(`${record.key}\u0000${admitted.id}`, { fingerprint: admitted.fingerprint, record: undefined });
    this.list(this.applied, record.partition).push({ walletId: record.key, eventId: admitted.id, fingerprint: admitted.fingerprint, outcome: "skipped", detail: EMPTY });
  }

  private timerDue(walletId: string, timerId: string): number | null | undefined {
    const key = `${walletId}\u0000${timerId}`;
    return this.timerStates.has(key) ? this.timerStates.get(key) : this.reads.timer(walletId, timerId);
  }

  private setTimer(walletId: string, partition: number, timerId: string, dueMs: number | null): void {
    this.timerStates.set(`${walletId}\u0000${timerId}`, dueMs);
    this.list(this.timerChanges, partition).push({ walletId, timerId, dueMs });
  }

  /** Decodes a record and checks it belongs where it is and has not been applied yet. */
  private admit(record: LogRecord): DeadLetterReason | { value: unknown; event: unknown; id: string; fingerprint: string; repeat: boolean; skip: boolean } {
    const input = this.inputs.get(record.topic);
    assert(input, `group ${this.group.name} polled ${record.topic}, which is not one of its inputs`);
    let value: unknown;
    try {
      value = input.topic.codec.decode(record.value);
    } catch (error) {
      if (error instanceof DecodeError) return { code: error.code, message: error.message };
      throw error;
    }
    if (input.topic.key(value) !== record.key) {
      return { code: "key_does_not_match_wallet", message: "the record key must be the event's wallet id, or the wallet's events would be split across partitions" };
    }
    const home = partitionForKey(record.key, this.partitions);
    if (home !== record.partition) {
      return { code: "wrong_partition", message: `wallet ${record.key} belongs in partition ${home} (Kafka's murmur2); a producer with another partitioner split it` };
    }
    const eventTimeMs = input.topic.eventTimeMs?.(value);
    const aheadMaxMs = this.reads.eventTimeAheadMaxMs;
    if (eventTimeMs !== undefined && aheadMaxMs !== undefined && eventTimeMs > record.timestampMs + aheadMaxMs) {
      return {
        code: "event_time_too_far_ahead",
        message: `the event time ${new Date(eventTimeMs).toISOString()} is more than ${aheadMaxMs / 1000} s (EVENT_TIME_FUTURE_MAX_SECONDS) after the record was written, at ${new Date(record.timestampMs).toISOString()}`,
      };
    }
    const identity = input.topic.identity(value);
    const id = scopedId(input, identity.id);
    const fingerprint = identity.fingerprint;
    const prior = this.seen.get(`${record.key}\u0000${id}`)?.fingerprint ?? this.reads.applied(record.key, id)?.fingerprint;
    if (prior !== undefined && prior !== fingerprint) {
      return { code: input.topic.conflictCode, message: `event id ${identity.id} was applied before with ${prior}, now ${fingerprint}` };
    }
    if (prior !== undefined) return { value, event: undefined, id, fingerprint, repeat: true, skip: false };
    const event = input.event(value);
    return { value, event, id, fingerprint, repeat: false, skip: event === undefined };
  }

  /** The context the actor decides an event of `record`'s wallet in. */
  private context(record: LogRecord): ActorContext<unknown> {
    return {
      nowMs: this.reads.nowMs,
      position: `${record.topic}:${record.partition}:${record.offset}`,
      recorded: (unscoped, scope) => {
        const eventId = scope === undefined ? unscoped : scopedId({ scope }, unscoped);
        const local = this.seen.get(`${record.key}\u0000${eventId}`);
        if (local) return local.record;
        const stored = this.reads.applied(record.key, eventId)?.detail;
        return stored && this.group.records ? this.group.records.codec.decode(stored) : undefined;
      },
    };
  }

  /**
   * Hands the event to the actor. An actor that throws anything but a broken
   * invariant is refusing this record, not failing the process: it is dead-lettered
   * like a terminal refusal, and its partition goes on.
   */
  private decide(record: LogRecord, event: unknown): DeadLetterReason | Decided<unknown, unknown, unknown> {
    const state = this.changes.get(record.key)?.state ?? this.reads.state(record.key);
    let outcome;
    try {
      outcome = this.actor.handle(state, event, this.context(record));
    } catch (error) {
      if (error instanceof AssertionError) throw error;
      return { code: "actor_failed", message: `${this.group.name} failed on this record: ${(error as Error)?.message ?? String(error)}` };
    }
    return isTerminal(outcome) ? outcome.terminal : outcome;
  }

  /** An emit goes to its key's partition (murmur2), whichever wallet it is for. */
  private route(out: unknown): ProduceRecord {
    const emission = this.group.emit(out);
    assert(this.emitTopics.has(emission.topic.name), `group ${this.group.name} emitted to ${emission.topic.name}, which it does not declare`);
    const key = emission.topic.key(emission.value);
    return { topic: emission.topic.name, key, partition: partitionForKey(key, this.partitions), value: emission.topic.codec.encode(emission.value) };
  }

  private deadLetter(record: LogRecord, reason: DeadLetterReason): void {
    this.list(this.output, record.partition).push(deadLetterRecord(this.group.name, record, reason));
  }

  private list<T>(map: Map<number, T[]>, partition: number): T[] {
    let list = map.get(partition);
    if (!list) map.set(partition, (list = []));
    return list;
  }

  /**
   * The batch as it will be committed. Per input partition it read: the output of its
   * records, then the changelog rows of the wallets it changed, then one batch record
   * with the ids it applied and the progress it reached (after the rows, so a reader
   * that has seen the progress has seen the rows).
   */
  finish(): Batch {
    const partitions = new Set([...this.next.values()].map((p) => p.partition));
    const inputTopics = this.group.inputs.map((i) => i.topic.name);
    const throughOf = (partition: number, positions: (tp: TopicPartition) => number): Through =>
      new Map(inputTopics.map((topic) => [topic, positions({ topic, partition })]));
    const before = (tp: TopicPartition) => this.reads.position(tp);
    const after = (tp: TopicPartition) => this.next.get(tpKey(tp))?.offset ?? this.reads.position(tp);
    const rows: TableRow[] = [];
    const changed = new Map<number, [string, WalletChange][]>();
    for (const entry of this.changes) this.list(changed, entry[1].partition).push(entry);
    for (const partition of partitions) {
      const version = versionOf(throughOf(partition, after));
      const out = this.list(this.output, partition);
      const delivered = this.reads.deliveredBefore?.(partition);
      const derived = this.group.records?.derived?.topic.name;
      const output = delivered === undefined ? undefined : { records: out.filter((r) => r.topic !== derived), deliveredBefore: delivered };
      for (const [walletId, change] of changed.get(partition) ?? []) {
        const value = this.group.table.codec.encode(change.state);
        rows.push({ key: walletId, value, version });
        const row = rowRecord(walletId, value, version);
        out.push({ topic: this.group.changelog, partition, ...row });
      }
      const closing = batchRecord(throughOf(partition, before), throughOf(partition, after), this.applied.get(partition) ?? [], this.timerChanges.get(partition) ?? [], output);
      out.push({ topic: this.group.changelog, partition, ...closing });
    }
    const from = [...this.next.values()].map((p) => ({ ...p, offset: this.reads.position(p) }));
    const applied = [...this.applied.values()].flat().map((a): AppliedId => ({
      key: a.walletId, eventId: a.eventId, fingerprint: a.fingerprint, outcome: a.outcome, detail: a.detail, seq: a.entry?.seq, recordedMs: a.entry?.recordedMs,
    }));
    const timers = [...this.timerChanges].flatMap(([partition, changes]) => changes.map((t): TimerRow => ({ key: t.walletId, timerId: t.timerId, partition, dueMs: t.dueMs })));
    return { from, to: [...this.next.values()], states: this.changes, rows, applied, timers, output: this.output };
  }
}

/**
 * An applied event as the store keeps it, with its ledger entry's number and time if it
 * wrote one. A record that does not decode (a newer writer's, say) is dropped and the id
 * kept: the id is what makes the event count once, and must never be lost.
 */
export function appliedId(group: AnyGroup, a: AppliedEvent, onBadRecord: (error: DecodeError) => void = () => {}): AppliedId {
  let entry: { seq: number; recordedMs: number } | undefined;
  let detail = a.detail;
  if (detail.byteLength > 0 && group.records) {
    try {
      entry = group.records.entry(group.records.codec.decode(detail));
    } catch (error) {
      if (!(error instanceof DecodeError)) throw error;
      onBadRecord(error);
      detail = EMPTY;
    }
  }
  return { key: a.walletId, eventId: a.eventId, fingerprint: a.fingerprint, outcome: a.outcome, detail, seq: entry?.seq, recordedMs: entry?.recordedMs };
}

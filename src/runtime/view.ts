import type { Log, LogRecord, RecordPosition, Subscription } from "../log/log.js";
import type { AppliedId, AppliedRow, StateStore, TableRow } from "../store/state-store.js";
import { Signal } from "../signal.js";
import { appliedId, tpKey } from "./batch.js";
import { decodeChangelog, type Through } from "./changelog.js";
import type { Codec } from "./codec.js";
import { DecodeError } from "./codec.js";
import { Backoff, isRetryable } from "./errors.js";
import type { Group } from "./group.js";
import { furthest } from "./restore.js";

/** How fresh a view is: whether it has caught up since it started, and up to when it is known complete. */
export interface ViewStatus {
  /** It has read everything its table held when it started, and its last read worked. */
  caughtUp: boolean;
  /** Every change made to the table before this time is in the view. */
  asOfMs: number;
}

/** An event id a group applied, with what it recorded of the decision. */
export interface AppliedRecord<R> {
  eventId: string;
  fingerprint: string;
  /** "applied", or the code of the rule that refused it. */
  outcome: string;
  record: R | undefined;
}

/** What the API reads: a group's table by wallet id (Goka's view), and its applied ids. */
export interface TableReader<S, R = never> {
  get(walletId: string): S | undefined;
  /** An event id applied to a wallet, if the view has it. */
  applied(walletId: string, eventId: string): AppliedRecord<R> | undefined;
  /** Applied ids that wrote a ledger entry, newest first, with entry numbers below `before`. */
  entries(walletId: string, before: number, limit: number): AppliedRecord<R>[];
  /** The newest entry recorded at or before `atMs`. */
  entryAt(walletId: string, atMs: number): AppliedRecord<R> | undefined;
  /**
   * Resolves true once the table includes the group's input record at `position`
   * (read your writes), or false after `timeoutMs`.
   */
  waitFor(position: RecordPosition, timeoutMs: number): Promise<boolean>;
  status(): ViewStatus;
  start(): void;
  /** Rejects if the view stopped on an error that is not retryable. */
  readonly done: Promise<void>;
  stop(): Promise<void>;
}

/** Reads of a group's applied ids and the records kept with them, under one owner in a store. */
abstract class AppliedReads<R> {
  constructor(
    private readonly recordsOf: Group<unknown, unknown, unknown, R>,
    protected readonly store: StateStore,
    readonly owner: string,
  ) {}

  applied(walletId: string, eventId: string): AppliedRecord<R> | undefined {
    const row = this.store.appliedEvent(this.owner, walletId, eventId);
    return row && this.decodeApplied(row);
  }

  entries(walletId: string, before: number, limit: number): AppliedRecord<R>[] {
    return this.store.entries(this.owner, walletId, before, limit).map((row) => this.decodeApplied(row));
  }

  entryAt(walletId: string, atMs: number): AppliedRecord<R> | undefined {
    const row = this.store.entryAt(this.owner, walletId, atMs);
    return row && this.decodeApplied(row);
  }

  private decodeApplied(row: AppliedRow): AppliedRecord<R> {
    const codec = this.recordsOf.records?.codec;
    const record = row.detail && row.detail.byteLength > 0 && codec ? codec.decode(new Uint8Array(row.detail)) : undefined;
    return { eventId: row.eventId, fingerprint: row.fingerprint, outcome: row.outcome, record };
  }
}

/** How often a waiter for a position looks at the progress of another thread or process. */
const WAIT_POLL_MS = 2;

/** Decoded rows a LocalTable keeps, at most; past it the cache starts over. */
const LOCAL_CACHE_ENTRIES_MAX = 100_000;

/**
 * A view on the embedded log: the group's own table, read in place. The table lives in
 * the log's database, which every process on the same DATA_DIR opens, so there is
 * nothing to replicate, and the view is exactly as fresh as the group's commits.
 *
 * Decoded rows are cached until anything is committed to the database by another
 * connection (SQLite's data_version, one cheap pragma per read): the processors write
 * through connections of their own, so a cached row is never older than the table.
 * Reads between writes, the common case of a balance check, cost no query. So the
 * store it reads must be on a connection no processor of the group commits through.
 */
export class LocalTable<S, R = never> extends AppliedReads<R> implements TableReader<S, R> {
  private readonly cache = new Map<string, S | undefined>();
  private dataVersion = -1;

  constructor(private readonly group: Group<S, unknown, unknown, R>, store: StateStore) {
    super(group, store, group.name);
  }

  get(walletId: string): S | undefined {
    const version = this.store.dataVersion();
    if (version !== this.dataVersion || this.cache.size >= LOCAL_CACHE_ENTRIES_MAX) {
      this.cache.clear();
      this.dataVersion = version;
    }
    if (this.cache.has(walletId)) return this.cache.get(walletId);
    const row = this.store.row(this.owner, walletId);
    const value = row ? this.group.table.codec.decode(row.value) : undefined;
    this.cache.set(walletId, value);
    return value;
  }

  async waitFor(position: RecordPosition, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.store.progress(this.owner, position) > position.offset) return true;
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await Bun.sleep(Math.min(left, WAIT_POLL_MS));
    }
  }

  status(): ViewStatus {
    return { caughtUp: true, asOfMs: Date.now() };
  }

  start(): void {}
  readonly done = Promise.resolve();
  async stop(): Promise<void> {}
}

export interface ViewLimits {
  batchRecordsMax: number;
  pollWaitMs: number;
  retryBackoffInitialMs: number;
  retryBackoffMaxMs: number;
  /** How often the view asks the log for the changelog's end, to know how fresh it is. */
  freshnessCheckMs: number;
}

export const DEFAULT_VIEW_LIMITS: ViewLimits = { batchRecordsMax: 5_000, pollWaitMs: 200, retryBackoffInitialMs: 50, retryBackoffMaxMs: 5_000, freshnessCheckMs: 500 };

/**
 * A read-only replica of a group's table on Kafka, fed by its changelog (Goka's view).
 * It reads every partition, with no consumer group, into a state store under the owner
 * "view:<changelog>", so any API instance can answer for any wallet, whichever
 * instance runs the group. A value replaces another only if its version is newer, so a
 * re-sent outbox never moves the view backwards. A record that does not decode is
 * skipped, counted and logged: the wallet keeps its last good value.
 */
export class ChangelogView<S, R = never> extends AppliedReads<R> implements TableReader<S, R> {
  private subscription: Subscription | undefined;
  private running: Promise<void> | undefined;
  private stopping = false;
  private readonly positions = new Map<string, RecordPosition>();
  /** Per partition: how far the group had applied its inputs, per the batch records read. */
  private readonly through = new Map<number, Through>();
  private readonly advanced = new Signal();
  /** Records polled but not yet stored; retried after a failed write. */
  private backlog: LogRecord[] = [];
  /** End offsets when the view started; reaching them is "caught up". */
  private startEnds: number[] | undefined;
  /** The latest end offsets asked for, and when: reaching them makes the view complete as of then. */
  private freshness: { ends: number[]; atMs: number } | undefined;
  private asOfMs = 0;
  private healthy = true;
  /** Changelog records that did not decode, since start. */
  skippedCount = 0;

  constructor(
    private readonly group: Group<S, unknown, unknown, R>,
    private readonly log: Log,
    store: StateStore,
    private readonly limits: ViewLimits = DEFAULT_VIEW_LIMITS,
  ) {
    super(group, store, `view:${group.changelog}`);
  }

  get(walletId: string): S | undefined {
    const row = this.store.row(this.owner, walletId);
    return row ? this.group.table.codec.decode(row.value) : undefined;
  }

  async waitFor(position: RecordPosition, timeoutMs: number): Promise<boolean> {
    const includes = () => (this.through.get(position.partition)?.get(position.topic) ?? 0) > position.offset;
    const deadline = Date.now() + timeoutMs;
    while (!includes()) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await this.advanced.wait(left);
    }
    return true;
  }

  status(): ViewStatus {
    const started = this.startEnds !== undefined && this.reached(this.startEnds);
    return { caughtUp: started && this.healthy, asOfMs: this.asOfMs };
  }

  start(): void {
    this.running ??= this.loop();
  }

  get done(): Promise<void> {
    return this.running ?? Promise.resolve();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.advanced.notify();
    await this.running?.catch(() => {});
    await this.subscription?.close();
  }

  private async loop(): Promise<void> {
    const backoff = new Backoff(this.limits.retryBackoffInitialMs, this.limits.retryBackoffMaxMs);
    let nextFreshnessMs = 0;
    while (!this.stopping) {
      try {
        if (Date.now() >= nextFreshnessMs) {
          nextFreshnessMs = Date.now() + this.limits.freshnessCheckMs;
          await this.askFreshness();
        }
        await this.step(this.limits.pollWaitMs);
        this.healthy = true;
        backoff.reset();
      } catch (error) {
        if (!isRetryable(error)) throw error;
        // Records whose write failed stay in the backlog and are retried.
        this.healthy = false;
        const delayMs = backoff.next();
        if (backoff.failures % 10 === 1) console.warn(`[${this.owner}] retrying in ${delayMs} ms after: ${(error as Error).message}`);
        await Bun.sleep(delayMs);
      }
    }
  }

  private async askFreshness(): Promise<void> {
    const atMs = Date.now();
    const ends = await this.log.endOffsets(this.group.changelog);
    this.startEnds ??= ends;
    this.freshness = { ends, atMs };
    this.noteFreshness();
  }

  private noteFreshness(): void {
    if (this.freshness && this.reached(this.freshness.ends)) this.asOfMs = Math.max(this.asOfMs, this.freshness.atMs);
  }

  private reached(ends: number[]): boolean {
    return ends.every((end, partition) => end === 0 || (this.positions.get(tpKey({ topic: this.group.changelog, partition }))?.offset ?? 0) >= end);
  }

  /** One poll and, if records came, one write. Public so tests can drive it. */
  async step(maxWaitMs: number): Promise<number> {
    this.subscription ??= this.log.subscribe({ topics: [this.group.changelog] });
    const room = this.limits.batchRecordsMax - this.backlog.length;
    const poll = room > 0 ? await this.subscription.poll(room, maxWaitMs) : { records: [], assigned: [], revoked: [] };
    for (const tp of poll.revoked) this.positions.delete(tpKey(tp));
    for (const tp of poll.assigned) this.assign(tp.partition);
    // Polled records stay in the backlog until their write succeeds: a subscription
    // on Kafka cannot go back to read them again.
    for (const record of poll.records) this.backlog.push(record);
    this.backlog = this.backlog.filter((r) => r.offset >= (this.positions.get(tpKey(r))?.offset ?? Number.POSITIVE_INFINITY));
    const count = this.backlog.length > 0 ? this.apply(this.backlog) : 0;
    this.noteFreshness();
    return count;
  }

  private assign(partition: number): void {
    const tp = { topic: this.group.changelog, partition };
    const position = { ...tp, offset: this.store.progress(this.owner, tp) };
    this.positions.set(tpKey(tp), position);
    this.subscription!.seek(position);
    const inputs = this.group.inputs.map((i) => i.topic.name);
    this.through.set(partition, new Map(inputs.map((topic) => [topic, this.store.progress(this.owner, { topic: `through:${topic}`, partition })])));
  }

  private apply(records: LogRecord[]): number {
    const rows = new Map<string, TableRow>();
    const applied: AppliedId[] = [];
    const through = new Map(this.through);
    for (const record of records) {
      const entry = this.decode(record);
      if (!entry) continue;
      if (entry.kind === "batch") {
        through.set(record.partition, furthest(through.get(record.partition) ?? new Map(), entry.through));
        // A group that records its decisions (the ledger's operations) is read by id too.
        if (this.group.records) for (const e of entry.events) applied.push(appliedId(this.group, e, (error) => this.skip(record, error)));
        continue;
      }
      const held = rows.get(entry.walletId);
      if (!held || held.version < entry.version) rows.set(entry.walletId, { key: entry.walletId, value: entry.value, version: entry.version });
    }
    const next = new Map<number, RecordPosition>();
    for (const r of records) next.set(r.partition, { topic: r.topic, partition: r.partition, offset: r.offset + 1 });
    // The through offsets are kept with the view's progress, so that after a restart
    // the view still knows what it includes.
    const marks = [...through].flatMap(([partition, t]) => [...t].map(([topic, offset]) => ({ topic: `through:${topic}`, partition, offset })));
    this.store.merge(this.owner, [...rows.values()], applied, [...next.values(), ...marks]);
    this.backlog = [];
    for (const p of next.values()) this.positions.set(tpKey(p), p);
    for (const [partition, t] of through) this.through.set(partition, t);
    this.advanced.notify();
    return records.length;
  }

  /** Decodes a changelog record and its row value; a bad one is skipped and counted. */
  private decode(record: LogRecord) {
    try {
      const entry = decodeChangelog(record.key, record.value);
      if (entry.kind === "row") (this.group.table.codec as Codec<S>).decode(entry.value);
      return entry;
    } catch (error) {
      if (!(error instanceof DecodeError)) throw error;
      this.skip(record, error);
      return undefined;
    }
  }

  private skip(record: LogRecord, error: DecodeError): void {
    this.skippedCount++;
    console.warn(`[${this.owner}] skipped undecodable record ${record.partition}:${record.offset} (${this.skippedCount} so far): ${error.message}`);
  }
}

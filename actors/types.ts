/**
 * The vocabulary of actors: plain values, no protobuf, no I/O. The runtime decodes
 * records into these and encodes states and emits back, so actors stay deterministic
 * functions that properties can test and replays can trust.
 */

/** A deposit as actors see it. Times are milliseconds since the Unix epoch. */
export interface DepositEvent {
  depositId: string;
  walletId: string;
  amountMinor: bigint;
  eventTimeMs: number;
}

export type FlagReason = "threshold" | "manual";

/** A change to a wallet's flag. */
export interface FlagChange {
  eventId: string;
  walletId: string;
  flagged: boolean;
  reason: FlagReason;
  eventTimeMs: number;
  /** Threshold changes only: the breaching window and its sum. */
  window?: { startMs: number; sumMinor: bigint };
}

/**
 * An event the actor decided: its new state, the events it emits (to any wallet: the
 * runtime routes each by its key), and, when it refused the event by a business rule,
 * a stable code saying why. A refused event leaves the state as it was, apart from
 * counters the actor keeps.
 */
export interface Decided<S, Out, R = never> {
  state: S;
  emits: Out[];
  rejection?: string;
  /**
   * What the group keeps of this decision with the event's id (an operation and its
   * ledger entry), for later lookups through the context and for the API's reads.
   */
  record?: R;
  /**
   * Timers of this wallet to set (a due time) or clear (null), by id. A timer that
   * comes due is handed back to the actor as an event of its own (the group's
   * `onTimer`), decided and committed like any other, once.
   */
  timers?: TimerRequest[];
}

/** Sets (dueMs) or clears (null) one timer of the decided wallet. */
export interface TimerRequest {
  id: string;
  dueMs: number | null;
}

/** A timer that came due, as the actor is handed it. */
export interface FiredTimer {
  walletId: string;
  timerId: string;
  dueMs: number;
}

/**
 * What an actor may read besides its state, all of it deterministic: the same input
 * gives the same context on every replay of an uncommitted batch.
 */
export interface ActorContext<R = never> {
  /** The processor's clock when the batch was built; use it only through state (e.g. max with the last). */
  readonly nowMs: number;
  /** Where the event's record is: "<topic>:<partition>:<offset>". */
  readonly position: string;
  /**
   * The record kept for an event id of this wallet, if one was decided before. Ids of
   * a scoped input (see `on` in src/runtime/group.ts) are read with their scope.
   */
  recorded(eventId: string, scope?: string): R | undefined;
}

/**
 * An event the actor cannot process at all, such as an amount no producer may send.
 * The runtime dead-letters the record with this reason and goes on; the state is
 * unchanged and the event's id stays free.
 */
export interface Terminal {
  terminal: { code: string; message: string };
}

/** A context with nothing recorded before, for actors driven outside the runtime (tests). */
export function freshContext<R = never>(nowMs = 0, recorded: ReadonlyMap<string, R> = new Map()): ActorContext<R> {
  return { nowMs, position: "test:0:0", recorded: (id, scope) => recorded.get(scope === undefined ? id : `${scope}:${id}`) };
}

export type Outcome<S, Out, R = never> = Decided<S, Out, R> | Terminal;

export function isTerminal<S, Out, R>(outcome: Outcome<S, Out, R>): outcome is Terminal {
  return "terminal" in outcome;
}

export function terminal(code: string, message: string): Terminal {
  return { terminal: { code, message } };
}

/**
 * A keyed actor, declared once as a value. `handle` must be pure: the same state and
 * event always give the same outcome, which is what makes redelivery and replay safe.
 * It may throw only for a broken invariant, which stops the process.
 */
export interface Actor<S, In, Out, R = never> {
  readonly name: string;
  initial(): S;
  handle(state: S, event: In, context: ActorContext<R>): Outcome<S, Out, R>;
}

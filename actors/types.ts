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
export interface Decided<S, Out> {
  state: S;
  emits: Out[];
  rejection?: string;
}

/**
 * An event the actor cannot process at all, such as an amount no producer may send.
 * The runtime dead-letters the record with this reason and goes on; the state is
 * unchanged and the event's id stays free.
 */
export interface Terminal {
  terminal: { code: string; message: string };
}

export type Outcome<S, Out> = Decided<S, Out> | Terminal;

export function isTerminal<S, Out>(outcome: Outcome<S, Out>): outcome is Terminal {
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
export interface Actor<S, In, Out> {
  readonly name: string;
  initial(): S;
  handle(state: S, event: In): Outcome<S, Out>;
}

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
 * What an actor returns for one event: its new state, the events it emits (keyed by
 * the same wallet), and, when it refused the event, a stable code saying why. A
 * refused event leaves the state as it was, apart from counters the actor keeps.
 */
export interface Outcome<S, Out> {
  state: S;
  emits: Out[];
  rejection?: string;
}

/**
 * A keyed actor, declared once as a value. `handle` must be pure: the same state and
 * event always give the same outcome, which is what makes redelivery and replay safe.
 */
export interface Actor<S, In, Out> {
  readonly name: string;
  initial(): S;
  handle(state: S, event: In): Outcome<S, Out>;
}

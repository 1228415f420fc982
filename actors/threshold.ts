import { invalidAmount } from "./wallet.js";
import type { Actor, DepositEvent, FlagChange } from "./types.js";
import { heaviestWindowContaining, insertSorted, lowerBound, type WindowEntry } from "./window.js";

/** The detector's state for one wallet. */
export interface ThresholdState {
  /** Deposits that can still take part in a breach, sorted by event time. */
  entries: WindowEntry[];
  newestTimeMs: number | null;
  firstBreachTimeMs: number | null;
  /** Entries forgotten because the wallet had more than `entriesMax` within reach. */
  evictedCount: number;
}

export interface ThresholdRule {
  /** Breach when a window's sum is strictly greater than this. */
  amountMinor: bigint;
  windowMs: number;
  /** Deposits may arrive this far behind the newest one and still be judged exactly. */
  latenessMs: number;
  /** Hard cap on remembered entries per wallet. */
  entriesMax: number;
  /**
   * Deposits refused for their amount alone are not deposits here either (they are
   * dead-lettered, as the collector does). A deposit
   * the collector refuses because the balance would pass its maximum still counts:
   * the detector cannot see balances, and the attempt to move that much money in
   * one window is the signal it exists for.
   */
  depositAmountMaxMinor: bigint;
}

/**
 * The detector (`threshold` group): flags a wallet when deposits whose event times lie
 * in one half-open window [s, s + windowMs) sum to more than the threshold. It is a
 * true sliding window over event time, so arrival order does not matter.
 *
 * Every deposit that lies in a breaching window emits a FlagChange with an id derived
 * from the deposit, so a replay emits the same ids and the flagger applies each once.
 *
 * State is bounded. A deposit can only share a window with deposits less than
 * windowMs away, so entries older than (newest - windowMs - latenessMs) are dropped;
 * past `entriesMax` the oldest entries go too, and are counted in `evictedCount`. The
 * rule is exact while deposits arrive at most latenessMs behind the wallet's newest and
 * the cap is not reached. Beyond that a late deposit is judged against fewer deposits
 * than it could have been: a breach may be missed, one is never invented.
 */
export function thresholdActor(rule: ThresholdRule): Actor<ThresholdState, DepositEvent, FlagChange> {
  return {
    name: "threshold",
    initial: () => ({ entries: [], newestTimeMs: null, firstBreachTimeMs: null, evictedCount: 0 }),
    handle(state, deposit) {
      const invalid = invalidAmount(deposit, rule.depositAmountMaxMinor);
      if (invalid) return invalid;
      const t = deposit.eventTimeMs;
      const withDeposit = insertSorted(state.entries, { timeMs: t, amountMinor: deposit.amountMinor });
      const heaviest = heaviestWindowContaining(withDeposit, t, rule.windowMs);
      const breach = heaviest.sumMinor > rule.amountMinor;
      const newestTimeMs = state.newestTimeMs === null ? t : Math.max(state.newestTimeMs, t);
      const retained = retain(withDeposit, newestTimeMs, rule);
      const next: ThresholdState = {
        entries: retained.entries,
        newestTimeMs,
        firstBreachTimeMs: state.firstBreachTimeMs ?? (breach ? t : null),
        evictedCount: state.evictedCount + retained.evicted,
      };
      if (!breach) return { state: next, emits: [] };
      const flag: FlagChange = {
        eventId: `threshold:${deposit.depositId}`,
        walletId: deposit.walletId,
        flagged: true,
        reason: "threshold",
        eventTimeMs: t,
        window: { startMs: heaviest.startMs, sumMinor: heaviest.sumMinor },
      };
      return { state: next, emits: [flag] };
    },
  };
}

function retain(entries: WindowEntry[], newestTimeMs: number, rule: ThresholdRule): { entries: WindowEntry[]; evicted: number } {
  // Entries this old can no longer share a window with any deposit that is on time.
  const expired = lowerBound(entries, newestTimeMs - rule.windowMs - rule.latenessMs);
  const overCap = Math.max(0, entries.length - expired - rule.entriesMax);
  if (expired === 0 && overCap === 0) return { entries, evicted: 0 };
  return { entries: entries.slice(expired + overCap), evicted: overCap };
}

/**
 * The sliding window of the threshold rule, as pure functions over deposits sorted by
 * event time. A window is the half-open interval [s, s + windowMs) for any s; the
 * heaviest window that contains a time t starts at the time of one of the deposits in
 * (t - windowMs, t], so those are the only starts worth trying.
 */

export interface WindowEntry {
  timeMs: number;
  amountMinor: bigint;
}

export interface HeaviestWindow {
  startMs: number;
  sumMinor: bigint;
}

/** Index of the first entry whose time is >= timeMs (entries sorted by time). */
export function lowerBound(entries: readonly WindowEntry[], timeMs: number): number {
  let lo = 0;
  let hi = entries.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (entries[mid]!.timeMs < timeMs) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** A copy of `entries` with `entry` inserted after any entries of the same time. */
export function insertSorted(entries: readonly WindowEntry[], entry: WindowEntry): WindowEntry[] {
  const at = lowerBound(entries, entry.timeMs + 1);
  return [...entries.slice(0, at), entry, ...entries.slice(at)];
}

/**
 * The heaviest window that contains `timeMs`, among `entries` (sorted). Runs in time
 * linear in the entries within one window length of `timeMs`, by two pointers: as the
 * start moves right past a group of equal times, that group leaves the sum and entries
 * newly inside [start, start + windowMs) join it.
 */
export function heaviestWindowContaining(entries: readonly WindowEntry[], timeMs: number, windowMs: number): HeaviestWindow {
  let best: HeaviestWindow = { startMs: timeMs, sumMinor: 0n };
  let sum = 0n;
  let right = lowerBound(entries, timeMs - windowMs + 1);
  let i = right;
  while (i < entries.length && entries[i]!.timeMs <= timeMs) {
    const start = entries[i]!.timeMs;
    while (right < entries.length && entries[right]!.timeMs < start + windowMs) {
      sum += entries[right]!.amountMinor;
      right++;
    }
    if (sum > best.sumMinor) best = { startMs: start, sumMinor: sum };
    while (i < entries.length && entries[i]!.timeMs === start) {
      sum -= entries[i]!.amountMinor;
      i++;
    }
  }
  return best;
}

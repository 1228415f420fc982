import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { thresholdActor, type ThresholdRule, type ThresholdState } from "../../actors/threshold.js";
import { freshContext, isTerminal, type Decided, type DepositEvent, type FlagChange, type Outcome } from "../../actors/types.js";

/** The decision of an outcome; a terminal refusal here is a failed test. */
function decided(outcome: Outcome<ThresholdState, FlagChange>): Decided<ThresholdState, FlagChange> {
  if (isTerminal(outcome)) throw new Error(`refused as terminal: ${outcome.terminal.code}`);
  return outcome;
}

const T = 1_000_000n; // 10,000.00
const W = 120_000;
const unbounded: ThresholdRule = { amountMinor: T, windowMs: W, latenessMs: 1e12, entriesMax: 100_000, depositAmountMaxMinor: 10n ** 12n };

interface Ev {
  t: number;
  a: bigint;
}

/** Brute force: is there a window [s, s+W) holding events[i] whose sum, over events[0..i], exceeds T? */
function oracleBreachContaining(events: Ev[], i: number): boolean {
  const seen = events.slice(0, i + 1);
  const ti = events[i]!.t;
  // Any breaching window can be slid right until its start meets an event time.
  return seen.some(({ t: s }) => s <= ti && ti < s + W && seen.filter((e) => s <= e.t && e.t < s + W).reduce((sum, e) => sum + e.a, 0n) > T);
}

function run(rule: ThresholdRule, events: Ev[]): { emitted: boolean[]; state: ThresholdState } {
  const actor = thresholdActor(rule);
  let state = actor.initial();
  const emitted: boolean[] = [];
  events.forEach((e, i) => {
    const deposit: DepositEvent = { depositId: `d${i}`, walletId: "w", amountMinor: e.a, eventTimeMs: e.t };
    const outcome = decided(actor.handle(state, deposit, freshContext()));
    state = outcome.state;
    emitted.push(outcome.emits.length > 0);
    for (const flag of outcome.emits) {
      expect(flag.eventId).toBe(`threshold:d${i}`);
      expect(flag.window!.sumMinor > T).toBe(true);
      expect(flag.window!.startMs <= e.t && e.t < flag.window!.startMs + W).toBe(true);
    }
  });
  return { emitted, state };
}

// Times cluster on the edges of the rule: equal times, exactly one window apart, one
// millisecond either side, and arbitrary order.
const edgeTime = fc.oneof(
  fc.constantFrom(0, 1, 60_000, 119_999, 120_000, 120_001, 240_000, 239_999),
  fc.integer({ min: 0, max: 400_000 }),
);
// Amounts whose sums land exactly on 10,000.00 and 10,000.01.
const edgeAmount = fc.oneof(
  fc.constantFrom(500_000n, 500_001n, 499_999n, 1_000_000n, 1_000_001n, 250_000n, 1n, 333_334n),
  fc.bigInt({ min: 1n, max: 1_100_000n }),
);
const events = fc.array(fc.record({ t: edgeTime, a: edgeAmount }), { minLength: 1, maxLength: 24 });

describe("threshold detector against a brute-force oracle", () => {
  test("emits for exactly the deposits that lie in a breaching window", () => {
    fc.assert(
      fc.property(events, (evs) => {
        const { emitted, state } = run(unbounded, evs);
        const expected = evs.map((_, i) => oracleBreachContaining(evs, i));
        expect(emitted).toEqual(expected);
        expect(state.firstBreachTimeMs !== null).toBe(expected.includes(true));
      }),
      { numRuns: 2_000 },
    );
  });

  test("with tight retention it may miss a breach but never invents one", () => {
    const tight: ThresholdRule = { ...unbounded, latenessMs: 30_000, entriesMax: 3 };
    fc.assert(
      fc.property(events, (evs) => {
        const { emitted, state } = run(tight, evs);
        evs.forEach((_, i) => {
          if (emitted[i]) expect(oracleBreachContaining(evs, i)).toBe(true);
        });
        expect(state.entries.length).toBeLessThanOrEqual(3);
      }),
      { numRuns: 1_000 },
    );
  });

  test("is exact under retention while deposits arrive in order and within the cap", () => {
    const bounded: ThresholdRule = { ...unbounded, latenessMs: 0, entriesMax: 1_000 };
    fc.assert(
      fc.property(events, (evs) => {
        const ordered = [...evs].sort((x, y) => x.t - y.t);
        const { emitted, state } = run(bounded, ordered);
        expect(emitted).toEqual(ordered.map((_, i) => oracleBreachContaining(ordered, i)));
        // Nothing older than one window behind the newest is kept.
        for (const e of state.entries) expect(e.timeMs).toBeGreaterThanOrEqual(state.newestTimeMs! - W);
      }),
      { numRuns: 1_000 },
    );
  });
});

describe("threshold rule, worked examples", () => {
  const at = (s: number) => s * 1000;
  const flagged = (evs: Ev[]) => run(unbounded, evs).emitted.includes(true);

  test("9,000 at 0:00:10 and 9,000 at 0:02:05 breach: the window slides, it does not reset", () => {
    expect(flagged([{ t: at(10), a: 900_000n }, { t: at(125), a: 900_000n }])).toBe(true);
  });
  test("exactly 120 s apart is two windows (half-open)", () => {
    expect(flagged([{ t: at(0), a: 900_000n }, { t: at(120), a: 900_000n }])).toBe(false);
    expect(flagged([{ t: at(0), a: 900_000n }, { t: at(120) - 1, a: 900_000n }])).toBe(true);
  });
  test("6,000 + 5,000 breach; exactly 10,000.00 does not; 10,000.01 does", () => {
    expect(flagged([{ t: 0, a: 600_000n }, { t: 1, a: 500_000n }])).toBe(true);
    expect(flagged([{ t: 0, a: 400_000n }, { t: 1, a: 600_000n }])).toBe(false);
    expect(flagged([{ t: 0, a: 400_000n }, { t: 1, a: 600_001n }])).toBe(true);
  });
  test("out of order: a late deposit completes a window before the newest", () => {
    expect(flagged([{ t: at(200), a: 900_000n }, { t: at(100), a: 900_000n }])).toBe(true);
  });
  test("refuses amounts the collector would refuse as terminal (a dead letter), without remembering them", () => {
    const actor = thresholdActor({ ...unbounded, depositAmountMaxMinor: 100n });
    for (const [amountMinor, code] of [[101n, "amount_exceeds_max"], [0n, "amount_must_be_positive"], [-5n, "amount_must_be_positive"]] as const) {
      const outcome = actor.handle(actor.initial(), { depositId: "d", walletId: "w", amountMinor, eventTimeMs: 0 }, freshContext());
      expect(isTerminal(outcome) && outcome.terminal.code).toBe(code);
    }
  });
});

// Overload on `dev`, embedded: offered three times what it serves, is the excess shed
// at once (503 overloaded with Retry-After) rather than queued? On a fresh `dev`,
// POST /deposit's closed-loop capacity is measured as the ingest suite measures it;
// then an open loop (bench/overload-load.ts) offers 3x that rate for a minute while the
// server's RSS is sampled every 250 ms; then, once the processors have caught up, every
// deposit answered 202 must be in the ledger exactly once, or the run fails. The same
// again on another fresh `dev` with WRITES_IN_FLIGHT_MAX at its largest (shedding
// effectively off), at the same offered rate: what the bound buys.
//
// About five minutes, so `bun run bench` runs it only when named: --only overload.
import type { Context } from "../context.js";
import { loadDetails, overloadLoop, throughput, type Latencies, type Overload, type Throughput } from "../http-load.js";
import { sampleRss, serverCore, serverPlacement, type RssSample, type Server } from "../proc.js";
import { embedded, startServer, writesInFlightMaxDefault } from "../product.js";
import { formatNumber, type Row } from "../result.js";
import { drain } from "../sentinels.js";
import { connections, repetitions } from "./ingest.js";

const rssIntervalMs = 250;
const mib = 2 ** 20;
/** GET /wallets/:id requests at once while checking the ledger. */
const checksAtOnce = 50;
/** Mismatching wallets named in the failure, at most. */
const mismatchesShown = 10;

interface LedgerCheck {
  wallets: number;
  acknowledged: number;
  /** Deposits answered 202 that the ledger lacks. */
  lost: number;
  /** Deposits in the ledger beyond those answered 202 and those of unknown outcome: shed or refused ones stored, or doubles. */
  extra: number;
  /** Deposits whose outcome the client cannot know (no answer, a lost connection, an unexpected status). */
  unknown: number;
  /** Of those, the ones the ledger has. */
  unknownStored: number;
  /** Wallets whose deposit_count or balance is off, described. */
  mismatches: string[];
}

interface Run {
  label: string;
  capacity: Throughput;
  load: Overload;
  rss: { before: number; peak: number; last: number; afterDrain: number; samples: number; peakBy10s: number[] };
  /** From the end of the load until the processors had applied everything. */
  drainSeconds: number;
  ledger: LedgerCheck;
}

interface WalletView {
  balance: number;
  deposit_count: number;
}

/** Each wallet of the load against GET /wallets/:id: its deposit_count and balance must be those answered 202. */
async function checkLedger(server: Server, load: Overload): Promise<LedgerCheck> {
  const w = load.perWallet;
  const check: LedgerCheck = { wallets: w.accepted.length, acknowledged: 0, lost: 0, extra: 0, unknown: 0, unknownStored: 0, mismatches: [] };
  for (let from = 0; from < w.accepted.length; from += checksAtOnce) {
    const ids = Array.from({ length: Math.min(checksAtOnce, w.accepted.length - from) }, (_, k) => from + k);
    await Promise.all(ids.map(async (i) => {
      const walletId = `${load.walletPrefix}${i}`;
      const res = await fetch(`${server.base}/wallets/${encodeURIComponent(walletId)}`);
      if (res.status !== 200) throw new Error(`GET /wallets/${walletId}: ${res.status} ${await res.text()}`);
      const view = (await res.json()) as WalletView;
      const count = view.deposit_count;
      const cents = Math.round(view.balance * 100);
      const [accepted, acceptedCents, unknown, unknownCents] = [w.accepted[i]!, w.acceptedCents[i]!, w.unknown[i]!, w.unknownCents[i]!];
      check.acknowledged += accepted;
      check.unknown += unknown;
      check.lost += Math.max(0, accepted - count);
      check.extra += Math.max(0, count - accepted - unknown);
      check.unknownStored += Math.min(unknown, Math.max(0, count - accepted));
      if (count < accepted || count > accepted + unknown || cents < acceptedCents || cents > acceptedCents + unknownCents) {
        check.mismatches.push(`${walletId}: deposit_count ${count}, balance ${view.balance}; answered 202: ${accepted} deposits of ${acceptedCents / 100} in all, ${unknown} of unknown outcome`);
      }
    }));
  }
  return check;
}

/** A fresh `dev`: its capacity, then the open loop at `factor` times it (or at `offered`), then the ledger checked. */
async function overloadRun(ctx: Context, label: string, writesInFlightMax: number | undefined, offered?: number): Promise<Run> {
  const sizes = ctx.sizes.overload;
  const dev = await startServer("dev", embedded, ctx.tempDir("overload"), serverCore, { writesInFlightMax });
  try {
    const caughtUp = () => drain(dev, ctx.tag);
    const capacity = await throughput(dev.base, { kind: "post", connections, wallets: ctx.sizes.walletsCycled }, repetitions(ctx), caughtUp);
    await caughtUp();
    const rate = Math.round(offered ?? sizes.factor * capacity.median.perSecond);
    console.log(`${label}: capacity ${formatNumber(capacity.median.perSecond)} req/s; offering ${formatNumber(rate)}/s for ${sizes.seconds} s over ${formatNumber(sizes.connections)} connections`);
    const sampler = sampleRss(dev, rssIntervalMs);
    let load: Overload;
    let samples: RssSample[];
    try {
      // The wallets of the capacity measure: the same work per deposit.
      load = await overloadLoop(dev.base, { ratePerSecond: rate, seconds: sizes.seconds, wallets: ctx.sizes.walletsCycled, connections: sizes.connections });
    } finally {
      samples = await sampler.stop();
    }
    const loadEnded = performance.now();
    await caughtUp();
    const drainSeconds = (performance.now() - loadEnded) / 1000;
    const afterDrain = await dev.rssBytes();
    const ledger = await checkLedger(dev, load);
    dev.assertRunning();
    const bytes = samples.map((s) => s.bytes);
    const peakBy10s: number[] = [];
    for (const s of samples) peakBy10s[Math.floor(s.ms / 10_000)] = Math.max(peakBy10s[Math.floor(s.ms / 10_000)] ?? 0, s.bytes);
    const rss = { before: bytes[0]!, peak: Math.max(...bytes), last: bytes.at(-1)!, afterDrain, samples: samples.length, peakBy10s };
    console.log(`${label}: served ${formatNumber(load.servedPerSecond)}/s (p99 ${formatNumber(load.servedMs.p99)} ms), shed ${formatNumber(load.shed)} (p99 ${formatNumber(load.shedMs.p99)} ms), ` +
      `skipped ${formatNumber(load.skipped)}, RSS peak ${formatNumber(rss.peak / mib)} MiB; ledger: ${ledger.lost} lost, ${ledger.extra} extra of ${formatNumber(ledger.acknowledged)} answered 202`);
    return { label, capacity, load, rss, drainSeconds, ledger };
  } finally {
    await dev.stop();
  }
}

/** Fails the run if a deposit answered 202 is not in the ledger exactly once, or one not answered 202 is. */
function assertLedger(run: Run): void {
  const l = run.ledger;
  if (l.lost === 0 && l.extra === 0 && l.mismatches.length === 0) return;
  throw new Error(`overload, ${run.label}: the ledger does not match the answers: ${l.lost} deposits answered 202 missing, ${l.extra} stored beyond them ` +
    `(of ${l.acknowledged} answered 202 and ${l.unknown} of unknown outcome, over ${l.wallets} wallets):\n${l.mismatches.slice(0, mismatchesShown).join("\n")}`);
}

const latencyText = (l: Latencies) => `p50 ${formatNumber(l.p50)} ms, p99 ${formatNumber(l.p99)} ms, max ${formatNumber(l.max)} ms`;
const capacityMeasure = `POST /deposit to dev, embedded, ${connections} connections, before the overload`;
const percent = (part: number, whole: number) => (whole === 0 ? 0 : (100 * part) / whole);
const counts = (byKey: Record<string, number>) => (Object.keys(byKey).length === 0 ? "none" : Object.entries(byKey).map(([k, n]) => `${n} ${k}`).join(", "));

/** The suite's method, told once, under its first figure. */
function method(ctx: Context): string {
  const s = ctx.sizes.overload;
  return `A fresh \`dev\` (embedded log, API and all processors), server ${serverPlacement}. First its closed-loop capacity, measured as POST /deposit to dev at ${connections} connections is ` +
    `(a warm-up, then the median of the runs, each after the processors caught up). Then bench/overload-load.ts on the other core offers ${s.factor}x that rate for ${s.seconds} s, open loop: ` +
    `deposit n is due at n/rate s and goes out on one of ${formatNumber(s.connections)} keep-alive connections with nothing outstanding, or is skipped (the client's cap) if there is none; ` +
    `a unique Idempotency-Key each, amounts 1.00 to 5.99, wallets cycling over ${formatNumber(ctx.sizes.walletsCycled)} new ones; latency from the due time. The server's RSS is sampled meanwhile; ` +
    `then, once the processors have caught up, the ledger is checked. The unbounded run is the same on another fresh \`dev\` with WRITES_IN_FLIGHT_MAX=${formatNumber(s.unboundedWritesInFlightMax)}, ` +
    `at the bounded run's offered rate. This figure: the bounded run's capacity, which the offered rate is a multiple of.`;
}

const how = (what: string) => `${what} The load and the runs: as under "${capacityMeasure}".`;

function runRows(ctx: Context, run: Run, id: string): Row[] {
  const load = run.load;
  const s = ctx.sizes.overload;
  const answers = load.served + load.shed + Object.values(load.other).reduce((a, b) => a + b, 0);
  const at = `at ${s.factor}x capacity, ${run.label}`;
  return [
    {
      id: `overload-served-${id}`,
      measure: `POST /deposit served ${at}`,
      value: load.servedPerSecond,
      unit: "req/s",
      details: `${formatNumber(load.offeredPerSecond)}/s offered, ${formatNumber(load.sentPerSecond)}/s sent (send lag p99 ${formatNumber(load.sendLagMs.p99)} ms, max ${formatNumber(load.sendLagMs.max)} ms; ` +
        `generator CPU ${formatNumber(100 * load.generatorCpuShare)}% of its core), ${formatNumber(load.skipped)} skipped by the client's cap of ${formatNumber(load.connections)} connections; ` +
        `${formatNumber(load.servedPerSecond / run.capacity.median.perSecond)}x this dev's closed-loop capacity (${formatNumber(run.capacity.median.perSecond)} req/s); ` +
        `other answers: ${counts(load.other)}; connections lost with a request outstanding: ${counts(load.lost)}; unanswered: ${load.unanswered}; reconnects: ${load.reconnects}`,
      how: how("Deposits answered 202 per second, from the first due time to the last answer."),
    },
    {
      id: `overload-served-p99-${id}`,
      measure: `p99 of 202 answers ${at}`,
      value: load.servedMs.p99,
      unit: "ms",
      details: `${latencyText(load.servedMs)}; p99 by ${load.timeline.length > 1 ? load.timeline[1]!.fromSecond : s.seconds} s of due time: ${load.timeline.map((b) => formatNumber(b.servedP99Ms)).join(", ")} ms`,
      how: how("Of the deposits answered 202, the time from when each was due to its answer."),
    },
    {
      id: `overload-shed-${id}`,
      measure: `Shed (503 overloaded) ${at}`,
      value: percent(load.shed, answers),
      unit: "% of answers",
      details: load.shed === 0 ? `none of ${formatNumber(answers)} answers` : `${formatNumber(load.shed)} of ${formatNumber(answers)} answers, ${formatNumber(load.shedWithRetryAfter)} of them with Retry-After; ${latencyText(load.shedMs)}`,
      how: how("The share of answers that were 503 with code overloaded; its latencies from the due time."),
    },
    ...(load.shed === 0 ? [] : [{
      id: `overload-shed-p99-${id}`,
      measure: `p99 of 503 overloaded answers ${at}`,
      value: load.shedMs.p99,
      unit: "ms",
      details: latencyText(load.shedMs),
      how: how("Of the deposits answered 503 overloaded, the time from when each was due to its answer."),
    }]),
    {
      id: `overload-rss-${id}`,
      measure: `Peak RSS of dev ${at}`,
      value: run.rss.peak / mib,
      unit: "MiB",
      details: `${formatNumber(run.rss.before / mib)} MiB before the load, ${formatNumber(run.rss.last / mib)} MiB at its end, ${formatNumber(run.rss.afterDrain / mib)} MiB once the processors caught up; peak by 10 s of sampling: ${run.rss.peakBy10s.map((b) => formatNumber(b / mib)).join(", ")} MiB (${run.rss.samples} samples)`,
      how: how(`VmRSS of the dev process (/proc/<pid>/status, its threads included) every ${rssIntervalMs} ms from just before the load to its last answer.`),
    },
    {
      id: `overload-lost-${id}`,
      measure: `Deposits answered 202 missing or doubled in the ledger, ${run.label}`,
      value: run.ledger.lost + run.ledger.extra,
      unit: "deposits",
      details: `${formatNumber(run.ledger.acknowledged)} answered 202 over ${formatNumber(run.ledger.wallets)} wallets; ${run.ledger.unknown} of unknown outcome (${run.ledger.unknownStored} of them stored); the processors caught up ${formatNumber(run.drainSeconds)} s after the load`,
      how: how("Once the processors have applied everything (sentinel deposits), each wallet's deposit_count and balance from GET /wallets/:id must equal the deposits answered 202 and their sum (within those of unknown outcome): nothing shed stored, nothing acknowledged lost. A mismatch fails the run."),
    },
  ];
}

export async function overload(ctx: Context): Promise<Row[]> {
  const bounded = await overloadRun(ctx, `WRITES_IN_FLIGHT_MAX ${formatNumber(writesInFlightMaxDefault)} (default)`, undefined);
  assertLedger(bounded);
  const unboundedMax = ctx.sizes.overload.unboundedWritesInFlightMax;
  const unbounded = await overloadRun(ctx, `WRITES_IN_FLIGHT_MAX ${formatNumber(unboundedMax)}`, unboundedMax, bounded.load.offeredPerSecond);
  assertLedger(unbounded);
  return [
    {
      id: "overload-capacity",
      measure: capacityMeasure,
      value: bounded.capacity.median.perSecond,
      unit: "req/s",
      details: `${loadDetails(bounded.capacity)}; the unbounded run's dev: ${formatNumber(unbounded.capacity.median.perSecond)} req/s`,
      how: method(ctx),
    },
    ...runRows(ctx, bounded, "bounded"),
    ...runRows(ctx, unbounded, "unbounded"),
  ];
}

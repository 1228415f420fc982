// How long and how big each measure runs: a full run, and --quick for CI (tiny, for
// checking that everything still runs; its figures mean little).

export interface FreshnessLevel {
  ratePerSecond: number;
  durationSeconds: number;
  p99TargetMs: number;
}

/** The overload suite (bench/suites/overload.ts). */
export interface OverloadSizes {
  /** The offered rate, as a multiple of the closed-loop capacity measured first. */
  factor: number;
  /** Length of each of the two open-loop runs (bounded, unbounded). */
  seconds: number;
  /** Keep-alive connections of the open loop, each with one request outstanding at most: the client's cap. */
  connections: number;
  /** WRITES_IN_FLIGHT_MAX of the comparison run: shedding effectively off (the product's largest). */
  unboundedWritesInFlightMax: number;
}

export interface Sizes {
  /** One closed-loop load run; each throughput figure is the median of `repetitions`. */
  ingestDurationSeconds: number;
  /** A first run whose figures are dropped: JIT, connection set-up, SQLite caches. */
  warmupDurationSeconds: number;
  repetitions: number;
  /** Wallets the HTTP load cycles over. */
  walletsCycled: number;
  backlog: { deposits: number; wallets: number };
  kafkaBacklog: { deposits: number; wallets: number };
  freshnessWarmupSeconds: number;
  freshness: FreshnessLevel[];
  /** Wallets, one deposit each, applied and then restored from the changelogs. */
  restoreWallets: number;
  overload: OverloadSizes;
}

export const fullSizes: Sizes = {
  ingestDurationSeconds: 10,
  warmupDurationSeconds: 3,
  repetitions: 3,
  walletsCycled: 1_000,
  backlog: { deposits: 300_000, wallets: 30_000 },
  // A third of the embedded backlog keeps the Kafka part of a run within minutes.
  kafkaBacklog: { deposits: 100_000, wallets: 10_000 },
  freshnessWarmupSeconds: 2,
  freshness: [
    { ratePerSecond: 1_000, durationSeconds: 10, p99TargetMs: 50 },
    { ratePerSecond: 5_000, durationSeconds: 10, p99TargetMs: 100 },
  ],
  restoreWallets: 1_000_000,
  // 8,192 connections: eight times the default WRITES_IN_FLIGHT_MAX, under the
  // 20,000 open files a process gets here (each side holds one per connection).
  overload: { factor: 3, seconds: 60, connections: 8_192, unboundedWritesInFlightMax: 100_000 },
};

export const quickSizes: Sizes = {
  ingestDurationSeconds: 2,
  warmupDurationSeconds: 1,
  repetitions: 1,
  walletsCycled: 1_000,
  backlog: { deposits: 3_000, wallets: 300 },
  kafkaBacklog: { deposits: 3_000, wallets: 300 },
  freshnessWarmupSeconds: 1,
  freshness: [{ ratePerSecond: 200, durationSeconds: 1, p99TargetMs: 50 }],
  restoreWallets: 2_000,
  overload: { factor: 3, seconds: 3, connections: 2_048, unboundedWritesInFlightMax: 100_000 },
};

import { parseTokens, type Tokens } from "./http/auth.js";
import { parseConfiguredAmount, parseCreditLimit } from "./money.js";

/**
 * Everything the service reads from the environment, validated once at start-up.
 * A bad value stops the process with a message naming the variable; nothing runs on
 * a half-understood configuration. The README's configuration table lists these.
 */
export interface Config {
  port: number;
  dataDir: string;
  partitions: number;
  /** Inclusive maximum of one deposit, minor units. */
  depositAmountMaxMinor: bigint;
  /** Inclusive maximum of a balance, minor units; deposits past it are rejected. */
  balanceMaxMinor: bigint;
  /** Inclusive maximum of a wallet's credit limit, minor units. */
  creditLimitMaxMinor: bigint;
  /** Inclusive maximum of one transfer, minor units (default: the deposit maximum). */
  transferAmountMaxMinor: bigint;
  /** A transfer still pending this long after its source held the amount is cancelled. */
  transferTimeoutMs: number;
  /** Wallets one user may open, at most. */
  userWalletsMax: number;
  threshold: ThresholdConfig;
  /** How often an embedded-log consumer looks for records written by other processes. */
  embeddedPollMs: number;
  /** Kafka/Redpanda bootstrap brokers; empty means the embedded log. */
  brokers: string[];
  /** Prepended to every topic and consumer group on the broker. */
  topicPrefix: string;
  replicationFactor: number;
  /** How long GET /check?after= waits for the view to include a position. */
  checkAfterWaitMs: number;
  /** How long a write to Kafka may take before the API answers 503 (the write may still land). */
  produceTimeoutMs: number;
  /** How far an event's time may be ahead of the time its record was written; further is dead-lettered. */
  eventTimeFutureMaxMs: number;
  /** Bearer tokens: API_TOKENS (write), ADMIN_TOKENS (admin), READ_TOKENS (read). */
  tokens: Tokens;
  /** NODE_ENV=production: the API refuses to start without API_TOKENS. */
  production: boolean;
  /** Writes one API instance has in flight, at most; more are shed with 503 overloaded. */
  writesInFlightMax: number;
  /** Requests one API instance has waiting for its view, at most; more answer at once without waiting. */
  viewWaitsMax: number;
  /** Kafka: records waiting in the client to be sent, at most; past it a write fails at once. */
  produceQueueRecordsMax: number;
  /** After SIGTERM, how long the API goes on answering (each answer closing its connection) before it stops listening. */
  shutdownGraceMs: number;
  /** After SIGTERM, how long requests in flight have, grace included, before their connections are closed. */
  shutdownTimeoutMs: number;
}

export interface ThresholdConfig {
  /** A window whose sum is strictly greater than this breaches. Minor units. */
  amountMinor: bigint;
  /** Window length: a window is the half-open interval [s, s + windowMs). */
  windowMs: number;
  /** How far behind a wallet's newest event a deposit may arrive and still be exact. */
  latenessMs: number;
  /** At most this many deposits are remembered per wallet. */
  entriesMax: number;
}

type Env = Record<string, string | undefined>;

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  if (!/^\d+$/.test(raw)) throw new Error(`${name} must be a whole number, got ${JSON.stringify(raw)}`);
  const value = Number(raw);
  if (value < min || value > max) throw new Error(`${name} must be between ${min} and ${max}, got ${value}`);
  return value;
}

function amount(env: Env, name: string, fallback: string): bigint {
  const raw = env[name];
  return parseConfiguredAmount(name, raw === undefined || raw === "" ? fallback : raw);
}

function creditLimit(raw: string): bigint {
  const result = parseCreditLimit(raw, BigInt(Number.MAX_SAFE_INTEGER) ** 2n);
  if (!result.ok) throw new Error(`CREDIT_LIMIT_MAX: ${result.message}`);
  return result.minor;
}

function brokers(raw: string | undefined): string[] {
  if (!raw) return [];
  const list = raw.split(",").map((b) => b.trim()).filter(Boolean);
  for (const broker of list) {
    if (!/^[A-Za-z0-9.\-_[\]:]+:\d{1,5}$/.test(broker)) throw new Error(`BROKERS must be host:port[,host:port], got ${JSON.stringify(broker)}`);
  }
  return list;
}

function topicPrefix(raw: string | undefined): string {
  const prefix = raw ?? "";
  // Kafka topic names allow these characters only, up to 249 of them.
  if (!/^[A-Za-z0-9._-]{0,100}$/.test(prefix)) throw new Error(`TOPIC_PREFIX may hold up to 100 of A-Z a-z 0-9 . _ -, got ${JSON.stringify(prefix)}`);
  return prefix;
}

/** int64 is the wire type of balances; keep a margin so a sum of two never wraps. */
const INT64_MAX = 2n ** 63n - 1n;

export function loadConfig(env: Env = process.env): Config {
  const config: Config = {
    port: integer(env, "PORT", 8080, 0, 65535),
    dataDir: env.DATA_DIR || "./data",
    partitions: integer(env, "PARTITIONS", 12, 1, 1024),
    depositAmountMaxMinor: amount(env, "DEPOSIT_AMOUNT_MAX", "1000000000"),
    balanceMaxMinor: amount(env, "BALANCE_MAX", "1000000000000000"),
    creditLimitMaxMinor: 0n,
    transferAmountMaxMinor: 0n,
    transferTimeoutMs: integer(env, "TRANSFER_TIMEOUT_SECONDS", 30, 1, 86400) * 1000,
    userWalletsMax: integer(env, "USER_WALLETS_MAX", 100, 1, 1000),
    threshold: {
      amountMinor: amount(env, "THRESHOLD_AMOUNT", "10000"),
      windowMs: integer(env, "THRESHOLD_WINDOW_SECONDS", 120, 1, 31 * 86400) * 1000,
      latenessMs: integer(env, "THRESHOLD_LATENESS_SECONDS", 86400, 0, 366 * 86400) * 1000,
      entriesMax: integer(env, "THRESHOLD_ENTRIES_MAX", 1000, 1, 100_000),
    },
    embeddedPollMs: integer(env, "EMBEDDED_POLL_MS", 50, 1, 1000),
    brokers: brokers(env.BROKERS),
    topicPrefix: topicPrefix(env.TOPIC_PREFIX),
    replicationFactor: integer(env, "REPLICATION_FACTOR", 1, 1, 32),
    checkAfterWaitMs: integer(env, "CHECK_AFTER_WAIT_MS", 2000, 0, 30_000),
    produceTimeoutMs: integer(env, "PRODUCE_TIMEOUT_MS", 5000, 100, 60_000),
    eventTimeFutureMaxMs: integer(env, "EVENT_TIME_FUTURE_MAX_SECONDS", 300, 0, 7 * 86400) * 1000,
    tokens: { write: parseTokens("API_TOKENS", env.API_TOKENS), admin: parseTokens("ADMIN_TOKENS", env.ADMIN_TOKENS), read: parseTokens("READ_TOKENS", env.READ_TOKENS) },
    production: env.NODE_ENV === "production",
    writesInFlightMax: integer(env, "WRITES_IN_FLIGHT_MAX", 1024, 1, 100_000),
    viewWaitsMax: integer(env, "VIEW_WAITS_MAX", 10_000, 0, 1_000_000),
    produceQueueRecordsMax: integer(env, "PRODUCE_QUEUE_RECORDS_MAX", 50_000, 100, 10_000_000),
    shutdownGraceMs: integer(env, "SHUTDOWN_GRACE_MS", 500, 0, 60_000),
    shutdownTimeoutMs: integer(env, "SHUTDOWN_TIMEOUT_MS", 10_000, 100, 600_000),
  };
  if (config.shutdownGraceMs > config.shutdownTimeoutMs) throw new Error("SHUTDOWN_GRACE_MS must not exceed SHUTDOWN_TIMEOUT_MS");
  if (config.balanceMaxMinor > INT64_MAX / 2n) throw new Error("BALANCE_MAX is too large for int64 balances");
  if (config.depositAmountMaxMinor > config.balanceMaxMinor) throw new Error("DEPOSIT_AMOUNT_MAX must not exceed BALANCE_MAX");
  // By default as large as a deposit may be (never more than a balance may be).
  const creditDefault = config.depositAmountMaxMinor < config.balanceMaxMinor ? config.depositAmountMaxMinor : config.balanceMaxMinor;
  // 0 turns credit off.
  config.creditLimitMaxMinor = env.CREDIT_LIMIT_MAX ? creditLimit(env.CREDIT_LIMIT_MAX) : creditDefault;
  if (config.creditLimitMaxMinor > config.balanceMaxMinor) throw new Error("CREDIT_LIMIT_MAX must not exceed BALANCE_MAX");
  config.transferAmountMaxMinor = env.TRANSFER_AMOUNT_MAX ? amount(env, "TRANSFER_AMOUNT_MAX", "") : config.depositAmountMaxMinor;
  if (config.transferAmountMaxMinor > config.balanceMaxMinor) throw new Error("TRANSFER_AMOUNT_MAX must not exceed BALANCE_MAX");
  // A window holds at most THRESHOLD_ENTRIES_MAX deposits plus the new one; its sum is
  // carried as int64 in flag events.
  if (BigInt(config.threshold.entriesMax + 1) * config.depositAmountMaxMinor > INT64_MAX) {
    throw new Error("(THRESHOLD_ENTRIES_MAX + 1) * DEPOSIT_AMOUNT_MAX must fit in int64 minor units");
  }
  return config;
}

import { expect, test } from "bun:test";
import { loadConfig } from "../src/config.js";

test("defaults are the documented ones", () => {
  const c = loadConfig({});
  expect(c).toMatchObject({ port: 8080, dataDir: "./data", partitions: 12, brokers: [], topicPrefix: "", replicationFactor: 1, checkAfterWaitMs: 2000, eventTimeFutureMaxMs: 300_000, writesInFlightMax: 1024, viewWaitsMax: 10_000, produceQueueRecordsMax: 50_000, production: false, shutdownGraceMs: 500, shutdownTimeoutMs: 10_000 });
  expect(c.tokens).toEqual({ read: [], write: [], admin: [] });
  expect(c.threshold).toEqual({ amountMinor: 1_000_000n, windowMs: 120_000, latenessMs: 86_400_000, entriesMax: 1000 });
  expect(c.depositAmountMaxMinor).toBe(100_000_000_000n);
});

test.each([
  [{ PORT: "eighty" }, /PORT must be a whole number/],
  [{ PARTITIONS: "0" }, /PARTITIONS must be between 1 and 1024/],
  [{ THRESHOLD_AMOUNT: "10.001" }, /THRESHOLD_AMOUNT: amount may have at most 2 decimals/],
  [{ BROKERS: "localhost" }, /BROKERS must be host:port/],
  [{ TOPIC_PREFIX: "bad prefix" }, /TOPIC_PREFIX/],
  [{ SHUTDOWN_GRACE_MS: "2000", SHUTDOWN_TIMEOUT_MS: "1000" }, /SHUTDOWN_GRACE_MS must not exceed SHUTDOWN_TIMEOUT_MS/],
  [{ EVENT_TIME_FUTURE_MAX_SECONDS: "604801" }, /EVENT_TIME_FUTURE_MAX_SECONDS must be between 0 and 604800/],
  [{ DEPOSIT_AMOUNT_MAX: "2000", BALANCE_MAX: "1000" }, /DEPOSIT_AMOUNT_MAX must not exceed BALANCE_MAX/],
  // A window sum of 1,001 maximal deposits would not fit the int64 of a flag event.
  [{ DEPOSIT_AMOUNT_MAX: "40000000000000000", BALANCE_MAX: "40000000000000000" }, /must fit in int64/],
])("refuses %p", (env, message) => {
  expect(() => loadConfig(env)).toThrow(message);
});

test("BROKERS takes a comma-separated list", () => {
  expect(loadConfig({ BROKERS: "a:9092, b:9093" }).brokers).toEqual(["a:9092", "b:9093"]);
});

test("CREDIT_LIMIT_MAX defaults to DEPOSIT_AMOUNT_MAX, may be 0 (no credit), and never exceeds BALANCE_MAX", () => {
  expect(loadConfig({}).creditLimitMaxMinor).toBe(100_000_000_000n);
  expect(loadConfig({ DEPOSIT_AMOUNT_MAX: "500" }).creditLimitMaxMinor).toBe(50_000n);
  expect(loadConfig({ CREDIT_LIMIT_MAX: "0" }).creditLimitMaxMinor).toBe(0n);
  expect(loadConfig({ CREDIT_LIMIT_MAX: "250.50" }).creditLimitMaxMinor).toBe(25_050n);
  expect(() => loadConfig({ CREDIT_LIMIT_MAX: "20", BALANCE_MAX: "10", DEPOSIT_AMOUNT_MAX: "10" })).toThrow(/CREDIT_LIMIT_MAX must not exceed BALANCE_MAX/);
  expect(() => loadConfig({ CREDIT_LIMIT_MAX: "-1" })).toThrow(/CREDIT_LIMIT_MAX/);
});

test("transfers: TRANSFER_AMOUNT_MAX defaults to DEPOSIT_AMOUNT_MAX, TRANSFER_TIMEOUT_SECONDS to 30; users: USER_WALLETS_MAX to 100", () => {
  const c = loadConfig({ DEPOSIT_AMOUNT_MAX: "500" });
  expect({ max: c.transferAmountMaxMinor, timeoutMs: c.transferTimeoutMs, wallets: c.userWalletsMax }).toEqual({ max: 50_000n, timeoutMs: 30_000, wallets: 100 });
  expect(loadConfig({ TRANSFER_AMOUNT_MAX: "750.25", TRANSFER_TIMEOUT_SECONDS: "2", USER_WALLETS_MAX: "3" })).toMatchObject({ transferAmountMaxMinor: 75_025n, transferTimeoutMs: 2_000, userWalletsMax: 3 });
  expect(() => loadConfig({ TRANSFER_AMOUNT_MAX: "20", BALANCE_MAX: "10", DEPOSIT_AMOUNT_MAX: "10" })).toThrow(/TRANSFER_AMOUNT_MAX must not exceed BALANCE_MAX/);
  expect(() => loadConfig({ TRANSFER_AMOUNT_MAX: "0" })).toThrow(/TRANSFER_AMOUNT_MAX/);
  expect(() => loadConfig({ TRANSFER_TIMEOUT_SECONDS: "0" })).toThrow(/TRANSFER_TIMEOUT_SECONDS must be between 1 and 86400/);
  expect(() => loadConfig({ USER_WALLETS_MAX: "1001" })).toThrow(/USER_WALLETS_MAX must be between 1 and 1000/);
});

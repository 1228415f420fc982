// The three kinds of error are told apart by structure. These are the shapes the Kafka
// client produced when a real broker was killed or frozen, built with its own classes.
import { describe, expect, test } from "bun:test";
import { AuthenticationError, MultipleErrors, NetworkError, ProtocolError, TimeoutError, UserError } from "@platformatic/kafka";
import { Database } from "bun:sqlite";
import { Backoff, hasApiError, isRetryable, LogUnavailableError } from "../../src/runtime/errors.js";
import { StaleProgressError } from "../../src/store/state-store.js";

const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:19092"), { code: "ECONNREFUSED" });
const connectionFailed = () => new NetworkError("Connection to 127.0.0.1:19092 failed.", { cause: refused });

function sqliteError(sql: string): unknown {
  const db = new Database(":memory:");
  try {
    db.run("CREATE TABLE t (k INTEGER PRIMARY KEY)");
    db.run("INSERT INTO t VALUES (1)");
    db.run(sql);
  } catch (error) {
    return error;
  } finally {
    db.close();
  }
  throw new Error("expected the statement to fail");
}

describe("isRetryable", () => {
  test.each([
    ["a broker that refuses connections, wrapped twice in MultipleErrors", new MultipleErrors("Producing messages failed.", [new MultipleErrors("produce failed 3 times.", [connectionFailed(), connectionFailed()])])],
    ["a frozen broker's request timeout", new TimeoutError("Request timed out")],
    ["a rebalance the member must rejoin for", new MultipleErrors("commit failed", [new ProtocolError("REBALANCE_IN_PROGRESS")])],
    ["a plain network error code", refused],
    ["our own log-unavailable error", new LogUnavailableError("produce did not complete within 5000 ms")],
    ["another process moved the progress", new StaleProgressError({ topic: "deposits", partition: 1 }, 4, 7)],
    ["SQLite busy", Object.assign(new Error("database is locked"), { name: "SQLiteError", code: "SQLITE_BUSY" })],
  ])("%s: retry", (_, error) => {
    expect(isRetryable(error)).toBe(true);
  });

  test.each([
    ["a record too large", new MultipleErrors("Producing messages failed.", [new ProtocolError("MESSAGE_TOO_LARGE")])],
    ["bad credentials hidden in a retryable network error's cause", new NetworkError("Connection failed.", { cause: new AuthenticationError("SASL failed") })],
    ["a misuse of the client", new UserError("Unknown topic deposits")],
    ["a client that was closed", new MultipleErrors("produce failed", [connectionFailed(), new UserError("Client closed while retrying produce.")])],
    ["a constraint violation", sqliteError("INSERT INTO t VALUES (1)")],
    ["a programmer's TypeError", new TypeError("cannot read properties of undefined")],
    ["a thrown string", "boom"],
  ])("%s: no retry", (_, error) => {
    expect(isRetryable(error)).toBe(false);
  });

  test("a real SQLite lock conflict is retryable", () => {
    const path = `${require("node:os").tmpdir()}/depositaja-busy-${process.pid}.db`;
    const a = new Database(path, { create: true });
    const b = new Database(path);
    try {
      a.run("PRAGMA journal_mode = WAL");
      a.run("CREATE TABLE t (k INTEGER)");
      b.run("PRAGMA busy_timeout = 0");
      a.run("BEGIN IMMEDIATE");
      let caught: unknown;
      try {
        b.run("BEGIN IMMEDIATE");
      } catch (error) {
        caught = error;
      }
      expect(isRetryable(caught)).toBe(true);
      a.run("COMMIT");
    } finally {
      a.close();
      b.close();
      require("node:fs").rmSync(path, { force: true });
      require("node:fs").rmSync(`${path}-wal`, { force: true });
      require("node:fs").rmSync(`${path}-shm`, { force: true });
    }
  });

  test("hasApiError finds a protocol error however deep", () => {
    const error = new MultipleErrors("createTopics failed", [new MultipleErrors("inner", [new ProtocolError("TOPIC_ALREADY_EXISTS")])]);
    expect(hasApiError(error, "TOPIC_ALREADY_EXISTS")).toBe(true);
    expect(hasApiError(error, "MESSAGE_TOO_LARGE")).toBe(false);
  });
});

describe("Backoff", () => {
  test("doubles from the first delay to the cap, with jitter, and starts over after reset", () => {
    const backoff = new Backoff(50, 5_000);
    const delays = Array.from({ length: 12 }, () => backoff.next());
    delays.forEach((delay, i) => {
      const ceiling = Math.min(5_000, 50 * 2 ** i);
      expect(delay).toBeGreaterThanOrEqual(ceiling / 2);
      expect(delay).toBeLessThanOrEqual(ceiling);
    });
    expect(backoff.failures).toBe(12);
    backoff.reset();
    expect(backoff.next()).toBeLessThanOrEqual(50);
  });
});

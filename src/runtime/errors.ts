/**
 * The three kinds of error, told apart by type and structure, never by message text
 * (Restate's terminal and retryable errors, TigerBeetle's assertions):
 *
 * - **Terminal**: one record cannot be processed: it does not decode, or its actor
 *   refuses it. It goes to the dead-letter topic and processing goes on. Terminal
 *   errors are values (a `DeadLetterReason`), never thrown past the batch.
 * - **Retryable**: the log or the disk is away for now. The operation is retried with
 *   bounded exponential backoff, for as long as it takes, without exiting.
 * - **Programmer errors**: a broken invariant. `assert` throws an AssertionError that
 *   nothing catches: the process crashes rather than go on with state it cannot trust.
 */

/** A broken invariant. Never caught: it stops the process. */
export class AssertionError extends Error {
  constructor(message: string) {
    super(`invariant broken: ${message}`);
    this.name = "AssertionError";
  }
}

/** Asserts an invariant. A false condition is a bug, and crashes the process. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionError(message);
}

/**
 * A failure of the log that is expected to pass: it could not be reached, or did not
 * answer in time. The operation may or may not have taken effect.
 */
export class LogUnavailableError extends Error {
  readonly retryable = true;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "LogUnavailableError";
  }
}

/** Why a record was dead-lettered: a stable code named after the broken rule. */
export interface DeadLetterReason {
  code: string;
  message: string;
}

// SQLite result codes (bun:sqlite's SQLiteError.code) that mean "not now": another
// connection holds the lock, or the disk failed or filled up. Extended codes such as
// SQLITE_BUSY_SNAPSHOT start with these.
const RETRYABLE_SQLITE = ["SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_IOERR", "SQLITE_FULL", "SQLITE_CANTOPEN", "SQLITE_PROTOCOL"];

// Errors of the operating system's network stack (Node's error.code).
const NETWORK_ERRNO = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN", "ECONNABORTED"]);

// Kafka protocol errors (the client's `apiId`) that no retry will mend: a wrong
// configuration, a missing permission, a record too large, a fenced producer.
const FATAL_KAFKA_API = new Set([
  "SASL_AUTHENTICATION_FAILED", "ILLEGAL_SASL_STATE", "UNSUPPORTED_SASL_MECHANISM", "TOPIC_AUTHORIZATION_FAILED",
  "GROUP_AUTHORIZATION_FAILED", "CLUSTER_AUTHORIZATION_FAILED", "TRANSACTIONAL_ID_AUTHORIZATION_FAILED", "UNSUPPORTED_VERSION",
  "UNSUPPORTED_FOR_MESSAGE_FORMAT", "MESSAGE_TOO_LARGE", "RECORD_LIST_TOO_LARGE", "INVALID_TOPIC_EXCEPTION", "INVALID_REQUIRED_ACKS",
  "INVALID_CONFIG", "INVALID_REQUEST", "INVALID_RECORD", "POLICY_VIOLATION", "TOPIC_ALREADY_EXISTS", "PRODUCER_FENCED",
  "INVALID_PRODUCER_EPOCH", "TRANSACTIONAL_ID_NOT_FOUND", "INVALID_TXN_STATE", "FENCED_INSTANCE_ID",
]);

/** Structural errors this module classifies: the fields it reads, nothing else. */
interface ErrorShape {
  name?: unknown;
  code?: unknown;
  apiId?: unknown;
  canRetry?: unknown;
  needsRejoin?: unknown;
  hasStaleMetadata?: unknown;
  closed?: unknown;
  retryable?: unknown;
  errors?: unknown;
  cause?: unknown;
}

const ERROR_DEPTH_MAX = 12;

/** Visits an error and everything it wraps (AggregateError's `errors`, and `cause`). */
function walk(error: unknown, visit: (e: ErrorShape) => void, depth = 0, seen = new Set<unknown>()): void {
  if (depth > ERROR_DEPTH_MAX || error === null || typeof error !== "object" || seen.has(error)) return;
  seen.add(error);
  const e = error as ErrorShape;
  visit(e);
  if (Array.isArray(e.errors)) for (const inner of e.errors) walk(inner, visit, depth + 1, seen);
  if (e.cause !== undefined) walk(e.cause, visit, depth + 1, seen);
}

/** How one error, without what it wraps, bears on retrying. */
function judge(e: ErrorShape): "fatal" | "retry" | "neutral" {
  if (e.retryable === true) return "retry";
  const code = typeof e.code === "string" ? e.code : "";
  if (e.name === "SQLiteError") return RETRYABLE_SQLITE.some((prefix) => code.startsWith(prefix)) ? "retry" : "neutral";
  if (NETWORK_ERRNO.has(code)) return "retry";
  if (!code.startsWith("PLT_KFK_")) return "neutral";
  // @platformatic/kafka: a closed client, bad credentials, a bad call or an unsupported
  // feature never mend; protocol errors say which they are.
  if (code === "PLT_KFK_AUTHENTICATION" || code === "PLT_KFK_USER" || code.startsWith("PLT_KFK_UNSUPPORTED") || e.closed === true) return "fatal";
  if (typeof e.apiId === "string" && FATAL_KAFKA_API.has(e.apiId)) return "fatal";
  // A connection that failed or a request that timed out (TimeoutError has this code
  // too, and sometimes says canRetry: false, for a request that may have been applied:
  // ours are idempotent).
  if (code === "PLT_KFK_NETWORK") return "retry";
  if (e.canRetry === true || e.needsRejoin === true || e.hasStaleMetadata === true) return "retry";
  return e.apiId === "OUT_OF_ORDER_SEQUENCE_NUMBER" || e.apiId === "UNKNOWN_PRODUCER_ID" ? "retry" : "neutral";
}

/**
 * True when `error` means the log or the disk is away for now, judged by structure:
 * our own retryable errors (LogUnavailableError, StaleProgressError), SQLite's busy
 * and I/O codes, network failures, and the Kafka client's errors that say they can be
 * retried. The client wraps failures in MultipleErrors (an AggregateError) and marks
 * only the inner errors, sometimes deep in `cause`, so the whole tree is searched: it
 * is retryable if any part of it is, unless any part is fatal (a SASL failure comes
 * as a retryable network error that wraps an authentication error).
 */
export function isRetryable(error: unknown): boolean {
  let retry = false;
  let fatal = false;
  walk(error, (e) => {
    const verdict = judge(e);
    if (verdict === "fatal") fatal = true;
    if (verdict === "retry") retry = true;
  });
  return retry && !fatal;
}

/** Whether the Kafka client's error, or anything it wraps, is the protocol error `apiId`. */
export function hasApiError(error: unknown, apiId: string): boolean {
  let found = false;
  walk(error, (e) => {
    if (e.apiId === apiId) found = true;
  });
  return found;
}

/**
 * Bounded exponential backoff with jitter: `next()` gives the delay before the next
 * attempt, doubling from `initialMs` up to `maxMs`; `reset()` after a success.
 */
export class Backoff {
  private attempt = 0;
  constructor(private readonly initialMs: number, private readonly maxMs: number) {}

  next(): number {
    const ceiling = Math.min(this.maxMs, this.initialMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    // Full jitter keeps instances that failed together from retrying together.
    return Math.max(1, Math.round(ceiling / 2 + (Math.random() * ceiling) / 2));
  }

  get failures(): number {
    return this.attempt;
  }

  reset(): void {
    this.attempt = 0;
  }
}

import { Hono, type Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { BalanceState } from "../../actors/balance.js";
import type { FlagState } from "../../actors/flagger.js";
import type { DepositEvent } from "../../actors/types.js";
import type { LogHealth } from "../log/guard.js";
import { formatMinor, parseAmount } from "../money.js";
import { EVENT_ID_LENGTH_MAX, idError, WALLET_ID_LENGTH_MAX } from "../runtime/codec.js";
import { isRetryable } from "../runtime/errors.js";
import type { Emitter } from "../runtime/emitter.js";
import type { TableReader } from "../runtime/view.js";
import { ApiError, errorResponse } from "./errors.js";
import { RawNumber, stringify } from "./json.js";

/** Requests larger than this are refused, before they are read when their length is declared. */
export const BODY_BYTES_MAX = 16 * 1024;
/** What Bun.serve reads of any request body at most, chunked ones included. */
export const MAX_REQUEST_BODY_BYTES = 1024 * 1024;

/** A view older than this is reported `stale` by GET /check. */
export const VIEW_STALE_AFTER_MS = 5_000;
/** What a 503 tells a client to wait before retrying, in seconds (RFC 9110 Retry-After). */
export const RETRY_AFTER_SECONDS = 1;

/** The log's health as the API needs it: the last state seen, and a real check. */
export interface Health {
  readonly state: LogHealth;
  check(): Promise<LogHealth>;
}

/** The API emits deposits and pings the log; it needs nothing else of the log. */
export interface AppDeps {
  deposits: Emitter<DepositEvent>;
  health: Health;
  balances: TableReader<BalanceState>;
  flags: TableReader<FlagState>;
  depositAmountMaxMinor: bigint;
  /** How long GET /check waits for ?after=<position> before answering without it. */
  checkAfterWaitMs?: number;
  /** The clock that stamps accepted deposits; tests pass their own. */
  nowMs?: () => number;
}

/**
 * The HTTP API on Hono. It validates at the edge, emits Deposit events to the log,
 * and answers reads from the table views; it keeps no state of its own.
 */
export function createApp(deps: AppDeps): Hono {
  const app = new Hono();
  const nowMs = deps.nowMs ?? Date.now;

  app.onError((error, c) => {
    if (error instanceof ApiError) return errorResponse(c, error);
    // Refusals of Hono's own middleware keep their status, in our error shape.
    if (error instanceof HTTPException && error.status < 500) {
      return errorResponse(c, new ApiError(error.status as 400, httpCode(error.status), error.message || "the request was refused"));
    }
    console.error("unhandled error", error);
    return errorResponse(c, new ApiError(500, "internal_error", "the server failed to handle the request"));
  });
  app.notFound((c) => errorResponse(c, new ApiError(404, "route_not_found", `no route for ${c.req.method} ${c.req.path}`)));

  app.post(
    "/deposit",
    async (c) => {
      const { body, amountSource } = await readJsonObject(c);
      const walletId = checkWalletId(body.wallet_id);
      const amount = parseAmount(body.amount, deps.depositAmountMaxMinor, amountSource);
      if (!amount.ok) throw new ApiError(400, amount.code, amount.message);
      const depositId = idempotencyKey(c) ?? Bun.randomUUIDv7();
      const position = await emitOrUnavailable(deps.deposits, { depositId, walletId, amountMinor: amount.minor, eventTimeMs: nowMs() });
      return exactJson(c, 202, {
        deposit_id: depositId,
        wallet_id: walletId,
        amount: new RawNumber(formatMinor(amount.minor)),
        // Pass as GET /check/:wallet_id?after=<position> to read this write.
        position: `${position.partition}:${position.offset}`,
      });
    },
  );

  app.get("/check/:wallet_id", async (c) => {
    const walletId = checkWalletId(c.req.param("wallet_id"));
    const after = parsePosition(c.req.query("after"));
    // Read your writes: the position a POST /deposit returned is in the balance view
    // once the collector has applied it.
    const position = after && { topic: deps.deposits.topic.name, ...after };
    const included = position ? await deps.balances.waitFor(position, deps.checkAfterWaitMs ?? CHECK_AFTER_WAIT_MS_DEFAULT) : undefined;
    const balance = deps.balances.get(walletId);
    const flag = deps.flags.get(walletId);
    // The views answer even while the log is away; they say how fresh they are.
    const asOfMs = Math.min(deps.balances.status().asOfMs, deps.flags.status().asOfMs);
    return exactJson(c, 200, {
      wallet_id: walletId,
      balance: new RawNumber(formatMinor(balance?.balanceMinor ?? 0n)),
      above_threshold: flag?.flagged ?? false,
      deposit_count: balance?.depositCount ?? 0,
      rejected_deposit_count: balance?.rejectedCount ?? 0,
      flag: flag?.flagged
        ? { reason: flag.reason, flagged_at: flag.changedTimeMs === null ? null : new Date(flag.changedTimeMs).toISOString() }
        : null,
      after: after ? { position: `${after.partition}:${after.offset}`, included } : undefined,
      as_of: new Date(asOfMs).toISOString(),
      stale: Date.now() - asOfMs > VIEW_STALE_AFTER_MS,
    });
  });

  app.get("/health", (c) => c.json({ status: "ok" }));

  app.get("/ready", async (c) => {
    const health = await deps.health.check();
    const views = { balances: deps.balances.status().caughtUp, flags: deps.flags.status().caughtUp };
    const ready = health.up && views.balances && views.flags;
    const log = health.up ? "ok" : `unavailable since ${new Date(health.sinceMs).toISOString()}: ${health.reason}`;
    return c.json({ status: ready ? "ready" : "not_ready", log, views_caught_up: views }, ready ? 200 : 503);
  });

  for (const path of ["/deposit", "/check/:wallet_id", "/health", "/ready"]) {
    app.all(path, (c) => errorResponse(c, new ApiError(405, "method_not_allowed", `${c.req.method} is not allowed on ${c.req.path}`)));
  }
  return app;
}

const CHECK_AFTER_WAIT_MS_DEFAULT = 2_000;
const POSITION = /^(\d{1,4}):(\d{1,15})$/;

/** Parses ?after=<partition>:<offset>, as POST /deposit returns it in `position`. */
function parsePosition(text: string | undefined): { partition: number; offset: number } | undefined {
  if (text === undefined) return undefined;
  const match = POSITION.exec(text);
  if (!match) throw new ApiError(400, "after_must_be_position", 'after must be a position "<partition>:<offset>" from POST /deposit, such as "9:0"');
  return { partition: Number(match[1]), offset: Number(match[2]) };
}

function exactJson(c: Context, status: 200 | 202, body: unknown): Response {
  return c.body(stringify(body), status, { "content-type": "application/json; charset=UTF-8" });
}

/**
 * Reads the body as a JSON object whatever the Content-Type says: the seed's own curl
 * sends none, so curl labels it application/x-www-form-urlencoded. Only multipart
 * bodies are refused outright, since they cannot be JSON.
 */
async function readJsonObject(c: Context): Promise<{ body: Record<string, unknown>; amountSource?: string }> {
  const contentType = c.req.header("content-type") ?? "";
  if (/^multipart\//i.test(contentType)) {
    throw new ApiError(415, "body_must_be_json", "send the body as JSON, not multipart form data");
  }
  // Refused before reading when the length is declared; a chunked body is read (Bun.serve
  // bounds it at MAX_REQUEST_BODY_BYTES) and then judged.
  const tooLarge = () => new ApiError(413, "body_too_large", `the body may be at most ${BODY_BYTES_MAX} bytes`);
  if (Number(c.req.header("content-length") ?? 0) > BODY_BYTES_MAX) throw tooLarge();
  let text: string;
  try {
    const bytes = await c.req.arrayBuffer();
    if (bytes.byteLength > BODY_BYTES_MAX) throw tooLarge();
    // Invalid UTF-8 would otherwise decode to U+FFFD and merge different wallet ids.
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (error) {
    if (error instanceof ApiError) throw error;
    throw new ApiError(400, "body_must_be_utf8", "the body must be UTF-8 text");
  }
  let body: unknown;
  // The source text of each number named "amount", by the object holding it (JSON.parse
  // source text access), so money is judged by the digits sent, not by a float.
  const amountSources = new WeakMap<object, string>();
  try {
    body = JSON.parse(text, function (this: object, key: string, value: unknown, context?: { source?: string }) {
      if (key === "amount" && typeof value === "number" && context?.source !== undefined) amountSources.set(this, context.source);
      return value;
    } as (key: string, value: unknown) => unknown);
  } catch {
    throw new ApiError(400, "body_must_be_json", 'the body must be a JSON object such as {"wallet_id":"w1","amount":"20.50"}');
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new ApiError(400, "body_must_be_object", "the body must be a JSON object");
  }
  return { body: body as Record<string, unknown>, amountSource: amountSources.get(body) };
}

function checkWalletId(value: unknown): string {
  if (value === undefined || value === null) throw new ApiError(400, "wallet_id_is_required", "wallet_id is required");
  if (typeof value !== "string") throw new ApiError(400, "wallet_id_must_be_string", "wallet_id must be a string");
  const error = idError(value, "wallet_id", WALLET_ID_LENGTH_MAX);
  if (error) throw new ApiError(400, error.code, error.message);
  return value;
}

function idempotencyKey(c: Context): string | undefined {
  const key = c.req.header("idempotency-key");
  if (key === undefined) return undefined;
  const error = idError(key, "idempotency_key", EVENT_ID_LENGTH_MAX);
  if (error) throw new ApiError(400, error.code, error.message);
  return key;
}

async function emitOrUnavailable(emitter: Emitter<DepositEvent>, deposit: DepositEvent) {
  try {
    return await emitter.emit(deposit);
  } catch (error) {
    // The log being away is logged once, by the guard that noticed; anything else is news.
    if (!isRetryable(error)) console.error("emit failed:", error);
    // A failed or timed-out write may still have landed, so the client is told the
    // id to retry with: the same id for the same wallet counts once.
    throw new ApiError(503, "log_unavailable", `the deposit may not have been stored; retry with the header Idempotency-Key: ${deposit.depositId}`, {
      fields: { deposit_id: deposit.depositId },
      headers: { "Retry-After": String(RETRY_AFTER_SECONDS) },
    });
  }
}

/** Stable codes for refusals made by Hono's middleware, by status. */
function httpCode(status: number): string {
  const codes: Record<number, string> = { 400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "route_not_found", 413: "body_too_large", 415: "unsupported_media_type", 429: "too_many_requests" };
  return codes[status] ?? `http_${status}`;
}

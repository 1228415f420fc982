import { Hono, type Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { BalanceState } from "../../actors/balance.js";
import type { FlagState } from "../../actors/flagger.js";
import type { Log } from "../log/log.js";
import { formatMinor, parseAmount } from "../money.js";
import { depositCodec, EVENT_ID_LENGTH_MAX, idError, WALLET_ID_LENGTH_MAX } from "../runtime/codecs.js";
import { TOPICS } from "../runtime/topology.js";
import { ApiError, errorResponse } from "./errors.js";
import { RawNumber, stringify } from "./json.js";

/** Requests larger than this are refused before they are read in full. */
export const BODY_BYTES_MAX = 16 * 1024;

/** What the API reads from: a table view, by wallet id. */
export interface WalletReader<T> {
  get(walletId: string): T | undefined;
  caughtUp(): boolean;
  /** Resolves true once the reader includes the deposit at `position`, false after `timeoutMs`. */
  waitFor(position: { partition: number; offset: number }, timeoutMs: number): Promise<boolean>;
}

export interface AppDeps {
  log: Log;
  balances: WalletReader<BalanceState>;
  flags: WalletReader<FlagState>;
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
    console.error("unhandled error", error);
    return errorResponse(c, new ApiError(500, "internal_error", "the server failed to handle the request"));
  });
  app.notFound((c) => errorResponse(c, new ApiError(404, "route_not_found", `no route for ${c.req.method} ${c.req.path}`)));

  app.post(
    "/deposit",
    bodyLimit({
      maxSize: BODY_BYTES_MAX,
      onError: () => {
        throw new ApiError(413, "body_too_large", `the body may be at most ${BODY_BYTES_MAX} bytes`);
      },
    }),
    async (c) => {
      const { body, amountSource } = await readJsonObject(c);
      const walletId = checkWalletId(body.wallet_id);
      const amount = parseAmount(body.amount, deps.depositAmountMaxMinor, amountSource);
      if (!amount.ok) throw new ApiError(400, amount.code, amount.message);
      const depositId = idempotencyKey(c) ?? Bun.randomUUIDv7();
      const value = depositCodec.encode({ depositId, walletId, amountMinor: amount.minor, eventTimeMs: nowMs() });
      const [position] = await produceOrUnavailable(deps.log, { topic: TOPICS.deposits, key: walletId, value }, depositId);
      return exactJson(c, 202, {
        deposit_id: depositId,
        wallet_id: walletId,
        amount: new RawNumber(formatMinor(amount.minor)),
        // Pass as GET /check/:wallet_id?after=<position> to read this write.
        position: `${position!.partition}:${position!.offset}`,
      });
    },
  );

  app.get("/check/:wallet_id", async (c) => {
    const walletId = checkWalletId(c.req.param("wallet_id"));
    const after = parsePosition(c.req.query("after"));
    // Read your writes: the position a POST /deposit returned is in the balance view
    // once the collector has applied it.
    const included = after ? await deps.balances.waitFor(after, deps.checkAfterWaitMs ?? CHECK_AFTER_WAIT_MS_DEFAULT) : undefined;
    const balance = deps.balances.get(walletId);
    const flag = deps.flags.get(walletId);
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
    });
  });

  app.get("/health", (c) => c.json({ status: "ok" }));

  app.get("/ready", async (c) => {
    const log = await deps.log.ping().then(() => "ok", (error: Error) => error.message);
    const views = { balances: deps.balances.caughtUp(), flags: deps.flags.caughtUp() };
    const ready = log === "ok" && views.balances && views.flags;
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
  let text: string;
  try {
    // Invalid UTF-8 would otherwise decode to U+FFFD and merge different wallet ids.
    text = new TextDecoder("utf-8", { fatal: true }).decode(await c.req.arrayBuffer());
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

async function produceOrUnavailable(log: Log, record: Parameters<Log["produce"]>[0][number], depositId: string) {
  try {
    return await log.produce([record]);
  } catch (error) {
    console.error("produce failed", error);
    // On Kafka a failed or timed-out produce may still have landed, so the client is
    // told the id to retry with: the same id for the same wallet counts once.
    throw new ApiError(503, "log_unavailable", `the deposit may not have been stored; retry with the header Idempotency-Key: ${depositId}`, { deposit_id: depositId });
  }
}

import { createRoute, z } from "@hono/zod-openapi";
import { formatMinor, parseAmount, parseCreditLimit } from "../money.js";
import { DERIVED_EVENT_ID_LENGTH_MAX, EVENT_ID_LENGTH_MAX, idError, WALLET_ID_LENGTH_MAX } from "../runtime/codec.js";
import { DESCRIPTION_LENGTH_MAX } from "../topics/commands.js";
import { USER_ID_LENGTH_MAX } from "../topics/user-wallets.js";

/**
 * The API's routes, declared once with zod (@hono/zod-openapi). Each declaration is
 * both the validator of its requests (see `validated` in app.ts) and its part of the
 * OpenAPI 3.1 document at GET /openapi.json. Every rule carries the stable error code
 * it answers with, so a refusal says which rule the request broke.
 */

export interface RouteLimits {
  amountMaxMinor: bigint;
  creditLimitMaxMinor: bigint;
  transferAmountMaxMinor: bigint;
}

/** The most a write waits for its decision under `Prefer: wait=<seconds>`. */
export const PREFER_WAIT_SECONDS_MAX = 10;
export const HISTORY_LIMIT_MAX = 500;
export const HISTORY_LIMIT_DEFAULT = 50;
/** How long POST /wallets waits for the opening to be decided before answering 202. */
export const OPEN_WAIT_SECONDS = 5;

/** A refusal by a rule of ours, as a zod issue: the code travels in params. */
function fail(ctx: z.RefinementCtx, code: string, message: string): void {
  ctx.addIssue({ code: "custom", message, params: { code } });
}

/** An id: 1 to `max` characters, well-formed Unicode, no control characters. */
const id = (field: string, max: number, description: string, example: string) =>
  z
    .string()
    .superRefine((value, ctx) => {
      const error = idError(value, field, max);
      if (error) fail(ctx, error.code, error.message);
    })
    .openapi({ description, example, minLength: 1, maxLength: max });

const walletId = id("wallet_id", WALLET_ID_LENGTH_MAX, "The wallet: 1 to 128 characters, no control characters.", "w1");
const operationIdParam = id("operation_id", DERIVED_EVENT_ID_LENGTH_MAX, "The operation's id, as a write answered it in `operation_id`.", "order-1001");
/** A wallet id under another field name (a transfer's two wallets). */
const walletIdOf = (field: string) => id(field, WALLET_ID_LENGTH_MAX, "A wallet: 1 to 128 characters, no control characters.", field === "to_wallet_id" ? "w2" : "w1");
const userId = id("user_id", USER_ID_LENGTH_MAX, "The user: 1 to 128 characters, no control characters.", "u1");

const decimalDescription =
  "A decimal with at most 2 fraction digits, as a JSON number or a string (`2000`, `\"20.50\"`). Judged by the digits sent, never through a float.";

// Any JSON number, Infinity included (1e309 parses to it), so that the money rules
// below, not the type check, say what is wrong with it.
const anyNumber = z.custom<number>((v) => typeof v === "number").openapi({ type: "number" });

/** Money in a request: positive, at most `maxMinor`, judged by its digits (see readJsonObject). */
const amount = (maxMinor: bigint) =>
  z
    .union([z.string(), anyNumber])
    .superRefine((value, ctx) => {
      const parsed = parseAmount(value, maxMinor);
      if (!parsed.ok) fail(ctx, parsed.code, parsed.message);
    })
    .openapi({ description: `${decimalDescription} Positive, at most ${formatMinor(maxMinor)}.`, example: "20.50" });

/** Money a wallet opens with: 0 (none) up to `maxMinor`. */
const initialAmount = (maxMinor: bigint) =>
  z
    .union([z.string(), anyNumber])
    .superRefine((value, ctx) => {
      const parsed = parseCreditLimit(value, maxMinor, "initial_amount");
      if (!parsed.ok) fail(ctx, parsed.code, parsed.message);
    })
    .openapi({ description: `${decimalDescription} 0 (none) up to ${formatMinor(maxMinor)}.`, example: "100" });

const creditLimit = (maxMinor: bigint) =>
  z
    .union([z.string(), anyNumber])
    .superRefine((value, ctx) => {
      const parsed = parseCreditLimit(value, maxMinor);
      if (!parsed.ok) fail(ctx, parsed.code, parsed.message);
    })
    .openapi({ description: `${decimalDescription} 0 (no credit) up to ${formatMinor(maxMinor)}.`, example: "50" });

const reference = id("reference", EVENT_ID_LENGTH_MAX, "The client's unique reference. It is the operation's id when no Idempotency-Key is sent.", "payout-7731").optional();
const description = z
  .string()
  .max(DESCRIPTION_LENGTH_MAX)
  .openapi({ description: `Free text for the history, at most ${DESCRIPTION_LENGTH_MAX} characters.`, example: "ATM withdrawal" })
  .optional();

const money = (text: string) => z.number().openapi({ description: `${text} An exact decimal (JSON number, at most 2 fraction digits).`, example: 20.5 });
const time = (text: string) => z.string().openapi({ description: `${text} RFC 3339, UTC.`, example: "2026-11-22T10:00:00.000Z" });
const position = z.string().openapi({ description: "Where the command is in the log, `<partition>:<offset>`; pass it as `?after=` to read this write.", example: "9:0" });

const idCodes = (field: string) => [`${field}_is_required`, `${field}_must_be_string`, `${field}_too_long`, `${field}_has_control_characters`, `${field}_must_be_valid_unicode`];
const moneyCodes = (field: string) =>
  ["is_required", "must_be_number_or_string", "must_be_decimal", "must_be_finite", "must_be_positive", "has_too_many_decimals", "exceeds_max"].map((rule) => `${field}_${rule}`);

/** Every `error.code` the API answers with, by HTTP status. The README's table lists the same. */
export const ERROR_CODES = {
  400: [
    "body_must_be_json", "body_must_be_utf8", "body_must_be_object", "body_incomplete", "body_must_be_empty", "host_invalid",
    ...idCodes("wallet_id"), ...moneyCodes("amount"), ...moneyCodes("credit_limit"), ...moneyCodes("initial_amount"),
    ...idCodes("from_wallet_id"), ...idCodes("to_wallet_id"), ...idCodes("user_id"),
    ...idCodes("idempotency_key"), "idempotency_key_must_be_utf8", ...idCodes("reference"), ...idCodes("operation_id").slice(2), "operation_id_reserved",
    "description_must_be_string", "description_too_long",
    "after_must_be_position", "limit_out_of_range", "cursor_invalid", "at_is_required", "at_must_be_rfc3339",
    "authorization_malformed",
  ],
  401: ["token_missing", "token_invalid"],
  403: ["write_token_required", "admin_token_required"],
  404: ["route_not_found", "operation_not_found"],
  405: ["method_not_allowed"],
  409: ["idempotency_key_reused", "wallet_exists", "user_wallets_exceed_max"],
  413: ["body_too_large"],
  415: ["body_must_be_json"],
  500: ["internal_error", "operation_not_applied"],
  503: ["log_unavailable", "overloaded"],
} as const;

const allCodes = [...new Set(Object.values(ERROR_CODES).flat())].sort();

export const ErrorBody = z
  .object({ error: z.object({ code: z.enum(allCodes as [string, ...string[]]).openapi({ example: "amount_has_too_many_decimals" }), message: z.string() }) })
  .openapi("Error", { description: "Every refusal: a stable code named after the broken rule, and a sentence for people." });

const KINDS = ["deposit", "withdrawal", "credit_limit", "reversal", "transfer", "open"] as const;
const ENTRY_KINDS = ["deposit", "withdrawal", "reversal", "transfer_out", "transfer_in", "open"] as const;

export const OperationBody = z
  .object({
    operation_id: z.string(),
    kind: z.enum(KINDS),
    status: z.enum(["pending", "settled", "rejected"]),
    reason: z.string().optional().openapi({ description: "Rejected only: the rule the operation broke, such as `insufficient_funds`.", example: "insufficient_funds" }),
    wallet_id: z.string(),
    amount: money("Deposit, withdrawal: the amount; credit limit: the new limit; reversal: the amount taken back.").nullable(),
    position: position.nullable(),
    deposit_id: z.string().optional().openapi({ description: "POST /deposit only: the operation id, under its seed name." }),
    created_at: time("When the API accepted it.").optional(),
    decided_at: time("When the wallet's actor decided it.").optional(),
    description: z.string().optional(),
    reference: z.string().optional(),
    entry_id: z.number().int().optional().openapi({ description: "The ledger entry it wrote, if it changed the balance." }),
    balance_after: money("The balance after it.").optional(),
    reversal_of: z.string().optional().openapi({ description: "Reversals: the deposit reversed." }),
    to_wallet_id: z.string().optional().openapi({ description: "Transfers: the destination." }),
    expires_at: time("Pending transfers: when the source cancels it if the destination has not decided it.").optional(),
  })
  .openapi("Operation");

const Entry = z
  .object({
    entry_id: z.number().int().openapi({ description: "1, 2, 3, ... per wallet." }),
    operation_id: z.string(),
    kind: z.enum(ENTRY_KINDS),
    amount: money("Signed: positive in, negative out."),
    balance_after: money("The balance after this entry."),
    event_time: time("When the operation happened."),
    recorded_at: time("When the ledger recorded it."),
    description: z.string().optional(),
    counterparty_wallet_id: z.string().optional().openapi({ description: "Transfers: the other wallet." }),
  })
  .openapi("Entry");

const Flag = z.object({ reason: z.enum(["threshold", "manual"]), flagged_at: time("When it was flagged.").nullable() }).nullable();

const freshness = {
  as_of: time("Every change committed before this time is included."),
  stale: z.boolean().openapi({ description: "True when the view is more than 5 s behind." }),
};

const WalletBody = z
  .object({
    wallet_id: z.string(),
    balance: money("The sum of the wallet's entries."),
    available: money("balance + credit_limit - held; below 0 only after a reversal."),
    held: money("Reserved by pending outgoing transfers."),
    credit_limit: money("How far below zero withdrawals may take the balance."),
    above_threshold: z.boolean(),
    flag: Flag,
    user_id: z.string().nullable().openapi({ description: "The user it was opened for, if any." }),
    opened_at: time("When it was opened by POST /wallets; null for a wallet that came into being on a deposit, or never seen.").nullable(),
    deposit_count: z.number().int(),
    withdrawal_count: z.number().int(),
    reversal_count: z.number().int(),
    transfer_out_count: z.number().int().openapi({ description: "Transfers sent and settled." }),
    transfer_in_count: z.number().int().openapi({ description: "Transfers received." }),
    pending_transfer_count: z.number().int().openapi({ description: "Outgoing transfers waiting for their destination, each holding its amount." }),
    rejected_count: z.number().int().openapi({ description: "Operations of any kind refused by a rule." }),
    entry_count: z.number().int(),
    ...freshness,
  })
  .openapi("Wallet");

const OpenedWallet = WalletBody.extend({ operation_id: z.string().openapi({ description: "The opening's id: always `open`." }) }).openapi("OpenedWallet");

const headers = z.object({
  "idempotency-key": id("idempotency_key", EVENT_ID_LENGTH_MAX, "The operation's id: the same key with the same content is the same operation; with other content, 409.", "order-1001").optional(),
  prefer: z.string().optional().openapi({ description: `RFC 7240. \`wait=<seconds>\` (at most ${PREFER_WAIT_SECONDS_MAX}) answers with the decision once it is made, or 202 when the wait runs out.`, example: "wait=5" }),
});

const json = <T extends z.ZodType>(schema: T, description: string) => ({ content: { "application/json": { schema } }, description });
const refusals = {
  400: json(ErrorBody, "The request broke a rule: see `error.code`."),
  413: json(ErrorBody, "The body is larger than 16 KiB."),
  415: json(ErrorBody, "The body is not JSON."),
  503: json(ErrorBody, "The log is unavailable; retry after `Retry-After` with the same Idempotency-Key."),
};
const writeResponses = {
  200: json(OperationBody, "Decided (with `Prefer: wait`, or a repeat of a decided operation): `settled`, or `rejected` with its `reason`."),
  202: json(OperationBody, "Accepted and `pending`: the wallet's actor decides it next."),
  409: json(ErrorBody, "`idempotency_key_reused`: the id was used for this wallet with other content (amount or kind)."),
  ...refusals,
};

const FlagAccepted = z
  .object({
    event_id: z.string().openapi({ description: "The flag event's id: the Idempotency-Key, or one made up." }),
    wallet_id: z.string(),
    flagged: z.boolean(),
    status: z.literal("pending"),
    position: z.string().openapi({ description: "Where the event is in `flags`, `<partition>:<offset>`.", example: "9:0" }),
  })
  .openapi("FlagAccepted");

/** PUT (flag) or DELETE (unflag) /wallets/{wallet_id}/flag. */
const flagRoute = (method: "put" | "delete", summary: string, description: string) =>
  createRoute({
    method,
    path: "/wallets/{wallet_id}/flag",
    tags: ["Writes"],
    summary,
    description,
    request: { headers: headers.pick({ "idempotency-key": true }), params: z.object({ wallet_id: walletId }) },
    responses: { 202: json(FlagAccepted, "Accepted: the flagger applies it next."), 400: refusals[400], 503: refusals[503] },
  });

const wallets = "Wallets";
const writes = "Writes";

/** Every route of the API, built for the configured limits. */
export function routes(limits: RouteLimits) {
  const moneyBody = z.object({ wallet_id: walletId, amount: amount(limits.amountMaxMinor), reference, description });
  return {
    deposit: createRoute({
      method: "post",
      path: "/deposit",
      tags: [writes],
      summary: "Deposit money into a wallet",
      description: "Emits a deposit command; the wallet's actor decides it. Refused by the actor with `balance_would_exceed_max`.",
      request: { headers, body: { content: { "application/json": { schema: moneyBody.openapi("DepositRequest", { example: { wallet_id: "w1", amount: "100" } }) } }, required: true } },
      responses: writeResponses,
    }),
    withdraw: createRoute({
      method: "post",
      path: "/withdraw",
      tags: [writes],
      summary: "Withdraw money from a wallet",
      description: "Decided against `available = balance + credit_limit - held`: `insufficient_funds` past it, `rejected_fraud` for a flagged wallet.",
      request: { headers, body: { content: { "application/json": { schema: moneyBody.openapi("WithdrawRequest", { example: { wallet_id: "w1", amount: "30", reference: "payout-7731" } }) } }, required: true } },
      responses: writeResponses,
    }),
    creditLimit: createRoute({
      method: "put",
      path: "/wallets/{wallet_id}/credit-limit",
      tags: [writes],
      summary: "Set a wallet's credit limit",
      description: "An operation like the others, decided by the actor: `credit_limit_below_usage` if it would leave `available` below 0.",
      request: {
        headers,
        params: z.object({ wallet_id: walletId }),
        body: { content: { "application/json": { schema: z.object({ credit_limit: creditLimit(limits.creditLimitMaxMinor), reference, description }).openapi("CreditLimitRequest", { example: { credit_limit: "50" } }) } }, required: true },
      },
      responses: writeResponses,
    }),
    reverse: createRoute({
      method: "post",
      path: "/wallets/{wallet_id}/operations/{operation_id}/reverse",
      tags: [writes],
      summary: "Reverse a settled deposit that bounced",
      description:
        "Takes the deposit's amount back, even into debt; a debt blocks every debit until it is repaid. The reversal's id is `reversal:<operation_id>`, so reversing twice is one operation (an Idempotency-Key is ignored). Any decided operation but a settled deposit: `operation_not_reversible`; one the wallet has not decided (yet): 404 `operation_not_found`.",
      request: { headers, params: z.object({ wallet_id: walletId, operation_id: id("operation_id", EVENT_ID_LENGTH_MAX, "The deposit to reverse.", "dep-1") }) },
      responses: { ...writeResponses, 404: json(ErrorBody, "`operation_not_found`: the wallet has not decided such an operation (yet).") },
    }),
    flag: flagRoute("put", "Flag a wallet by hand (admin)", "Emits a manual flag event, as `bun run flag-wallet` does; the flagger applies it and `above_threshold` turns true with reason `manual`. A flagged wallet's withdrawals, purchases and outgoing transfers are `rejected_fraud`. The Idempotency-Key is the event's id: the flagger applies one id once."),
    unflag: flagRoute("delete", "Clear a wallet's flag (admin)", "Emits a manual unflag event, as `bun run flag-wallet --remove` does. The detector flags the wallet again only on a new breach."),
    operation: createRoute({
      method: "get",
      path: "/wallets/{wallet_id}/operations/{operation_id}",
      tags: [wallets],
      summary: "An operation and its status",
      request: {
        params: z.object({ wallet_id: walletId, operation_id: operationIdParam }),
        query: z.object({ after: position.optional() }),
      },
      responses: {
        200: json(OperationBody, "The operation."),
        400: refusals[400],
        404: json(ErrorBody, "`operation_not_found`."),
        409: json(ErrorBody, "`idempotency_key_reused`: asked with `?after=` the position of a write this instance took under this id, which lost to another write with other content."),
      },
    }),
    wallet: createRoute({
      method: "get",
      path: "/wallets/{wallet_id}",
      tags: [wallets],
      summary: "A wallet's balance, available funds, credit limit and flag",
      request: { params: z.object({ wallet_id: walletId }) },
      responses: {
        200: json(WalletBody, "The wallet; a wallet never seen is all zeros."),
        400: refusals[400],
      },
    }),
    openWallet: createRoute({
      method: "post",
      path: "/wallets",
      tags: [writes],
      summary: "Open a wallet, for a user, with an initial amount",
      description:
        `Opens the wallet (its id is generated when absent). Answers 201 with the wallet once its actor has decided the opening (it waits up to ${OPEN_WAIT_SECONDS} s, then answers 202 with the pending operation). Opening it again with the same content is the same operation (201 again); with other content, 409 \`wallet_exists\`. A wallet that was never opened still comes into being on its first deposit, but cannot receive transfers until it holds money or is opened.`,
      request: {
        body: {
          content: {
            "application/json": {
              schema: z.object({ wallet_id: walletId.optional(), user_id: userId.optional(), initial_amount: initialAmount(limits.amountMaxMinor).optional() }).openapi("OpenWalletRequest", { example: { wallet_id: "w1", user_id: "u1", initial_amount: "100" } }),
            },
          },
          required: true,
        },
      },
      responses: {
        201: json(OpenedWallet, "The wallet, opened."),
        200: json(OperationBody, "The opening was refused by a rule (`status: rejected`)."),
        202: json(OperationBody, "The opening is accepted and not decided yet."),
        409: json(ErrorBody, "`wallet_exists`: opened before with other content; `user_wallets_exceed_max`: the user has as many wallets as one may."),
        ...refusals,
      },
    }),
    transfer: createRoute({
      method: "post",
      path: "/transfer",
      tags: [writes],
      summary: "Move money from one wallet to another",
      description:
        "A saga between the two wallets' actors: the source holds the amount and asks the destination, the destination credits or refuses, the source settles or releases. The operation belongs to the source: `GET /wallets/{from_wallet_id}/operations/{operation_id}`. Rejected with `insufficient_funds`, `rejected_fraud` (source flagged), `same_wallet`, `amount_exceeds_max` at the source, or with the destination's `destination_not_found`, `balance_would_exceed_max`, `transfer_expired`.",
      request: {
        headers,
        body: {
          content: {
            "application/json": {
              schema: z
                .object({ from_wallet_id: walletIdOf("from_wallet_id"), to_wallet_id: walletIdOf("to_wallet_id"), amount: amount(limits.transferAmountMaxMinor), reference, description })
                .openapi("TransferRequest", { example: { from_wallet_id: "w1", to_wallet_id: "w2", amount: "25" } }),
            },
          },
          required: true,
        },
      },
      responses: writeResponses,
    }),
    userWallets: createRoute({
      method: "get",
      path: "/users/{user_id}/wallets",
      tags: [wallets],
      summary: "A user's wallets with their balances",
      request: { params: z.object({ user_id: userId }) },
      responses: {
        200: json(z.object({ user_id: z.string(), wallets: z.array(WalletBody) }).openapi("UserWallets"), "The wallets opened for the user, oldest first; none for a user never seen."),
        400: refusals[400],
      },
    }),
    userActivity: createRoute({
      method: "get",
      path: "/users/{user_id}/activity",
      tags: [wallets],
      summary: "The entries of all of a user's wallets, newest first",
      request: {
        params: z.object({ user_id: userId }),
        query: z.object({
          limit: z.string().optional().openapi({ description: `1 to ${HISTORY_LIMIT_MAX}, default ${HISTORY_LIMIT_DEFAULT}.`, example: "50" }),
          cursor: z.string().optional().openapi({ description: "`next_cursor` of the previous page." }),
        }),
      },
      responses: {
        200: json(
          z.object({ user_id: z.string(), entries: z.array(Entry.extend({ wallet_id: z.string() })), next_cursor: z.string().nullable().openapi({ description: "Null on the last page." }) }).openapi("Activity"),
          "One page of entries, newest first by recorded time.",
        ),
        400: refusals[400],
      },
    }),
    history: createRoute({
      method: "get",
      path: "/wallets/{wallet_id}/history",
      tags: [wallets],
      summary: "A wallet's ledger entries, newest first",
      request: {
        params: z.object({ wallet_id: walletId }),
        query: z.object({
          limit: z.string().optional().openapi({ description: `1 to ${HISTORY_LIMIT_MAX}, default ${HISTORY_LIMIT_DEFAULT}.`, example: "50" }),
          cursor: z.string().optional().openapi({ description: "`next_cursor` of the previous page." }),
        }),
      },
      responses: {
        200: json(
          z.object({ wallet_id: z.string(), entries: z.array(Entry), next_cursor: z.string().nullable().openapi({ description: "Null on the last page." }) }).openapi("History"),
          "One page of entries.",
        ),
        400: refusals[400],
      },
    }),
    balanceAt: createRoute({
      method: "get",
      path: "/wallets/{wallet_id}/balance",
      tags: [wallets],
      summary: "A wallet's balance as of a time",
      description: "Counted by when the ledger recorded the entries (`recorded_at`).",
      request: { params: z.object({ wallet_id: walletId }), query: z.object({ at: z.string().openapi({ description: "RFC 3339, such as 2026-11-22T10:00:00Z.", example: "2026-11-22T10:00:00Z" }) }) },
      responses: {
        200: json(
          z.object({ wallet_id: z.string(), at: time("The time asked for."), balance: money("The balance after the last entry recorded at or before `at`."), entry_id: z.number().int().nullable() }).openapi("BalanceAt"),
          "The balance then.",
        ),
        400: refusals[400],
      },
    }),
    check: createRoute({
      method: "get",
      path: "/check/{wallet_id}",
      tags: [wallets],
      summary: "The seed's check: balance and the threshold flag",
      request: { params: z.object({ wallet_id: walletId }), query: z.object({ after: position.optional() }) },
      responses: {
        200: json(
          z
            .object({
              wallet_id: z.string(),
              balance: money("The wallet's balance."),
              above_threshold: z.boolean(),
              deposit_count: z.number().int(),
              rejected_deposit_count: z.number().int(),
              flag: Flag,
              after: z.object({ position, included: z.boolean() }).optional(),
              ...freshness,
            })
            .openapi("Check"),
          "The wallet.",
        ),
        400: refusals[400],
      },
    }),
    health: createRoute({ method: "get", path: "/health", tags: ["Service"], summary: "The process is up", responses: { 200: json(z.object({ status: z.literal("ok") }), "Up.") } }),
    ready: createRoute({
      method: "get",
      path: "/ready",
      tags: ["Service"],
      summary: "The log answers and the views have caught up",
      responses: {
        200: json(z.object({ status: z.string(), log: z.string(), views_caught_up: z.record(z.string(), z.boolean()) }), "Ready."),
        503: json(z.object({ status: z.string(), log: z.string(), views_caught_up: z.record(z.string(), z.boolean()) }), "Not ready."),
      },
    }),
  };
}

export type Routes = ReturnType<typeof routes>;

import { OpenAPIHono, type RouteConfig } from "@hono/zod-openapi";
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ZodType } from "zod";
import type { FlagState } from "../../actors/flagger.js";
import type { FlagChange } from "../../actors/types.js";
import type { UserState } from "../../actors/users.js";
import { available, initialWallet, OPEN_OPERATION_ID, TRANSFER_SCOPE, transferStepId, type OperationRecord, type WalletCommand, type WalletState } from "../../actors/wallet.js";
import type { LogHealth } from "../log/guard.js";
import type { RecordPosition } from "../log/log.js";
import { exactDecimal, formatMinor, parseAmount, parseCreditLimit } from "../money.js";
import { isRetryable } from "../runtime/errors.js";
import type { Emitter } from "../runtime/emitter.js";
import { scopedId } from "../runtime/group.js";
import type { AppliedRecord, TableReader } from "../runtime/view.js";
import { commandFingerprint, REVERSAL_ID_PREFIX, reversalId } from "../topics/commands.js";
import { Auth, NO_TOKENS, type Role } from "./auth.js";
import { renderDocs } from "./docs.js";
import { ApiError, errorResponse } from "./errors.js";
import { RawNumber, stringify } from "./json.js";
import { ErrorBody, HISTORY_LIMIT_DEFAULT, HISTORY_LIMIT_MAX, OPEN_WAIT_SECONDS, PREFER_WAIT_SECONDS_MAX, routes } from "./routes.js";

/** Requests larger than this are refused, before they are read when their length is declared. */
export const BODY_BYTES_MAX = 16 * 1024;
/** What Bun.serve reads of any request body at most, chunked ones included. */
export const MAX_REQUEST_BODY_BYTES = 1024 * 1024;

/**
 * Bun makes `request.url` absolute from the Host header; when Host is missing (HTTP/1.0)
 * or not a host (`a b`, `x/y`) it hands over the bare path, and routing on that cuts the
 * path in the wrong place. Such a request is refused (RFC 9112 3.2), before any route.
 */
export function hostRefusal(request: Request): Response | undefined {
  if (request.url.charCodeAt(0) !== 47 /* "/" */) return undefined;
  const error = { code: "host_invalid", message: "the request needs a Host header naming a host (RFC 9112, section 3.2)" };
  return Response.json({ error }, { status: 400, headers: { Connection: "close" } });
}

/** A view older than this is reported `stale` by GET /check. */
export const VIEW_STALE_AFTER_MS = 5_000;
/** What a 503 tells a client to wait before retrying, in seconds (RFC 9110 Retry-After). */
export const RETRY_AFTER_SECONDS = 1;
/** Writes one API instance has in flight, at most, unless WRITES_IN_FLIGHT_MAX says otherwise. */
export const WRITES_IN_FLIGHT_MAX_DEFAULT = 1024;
/** Requests one API instance has waiting for its view, at most, unless VIEW_WAITS_MAX says otherwise. */
export const VIEW_WAITS_MAX_DEFAULT = 10_000;

/** The log's health as the API needs it: the last state seen, and a real check. */
export interface Health {
  readonly state: LogHealth;
  check(): Promise<LogHealth>;
}

/** The API emits commands and pings the log; it needs nothing else of the log. */
export interface AppDeps {
  commands: Emitter<WalletCommand>;
  health: Health;
  balances: TableReader<WalletState, OperationRecord>;
  flags: TableReader<FlagState>;
  depositAmountMaxMinor: bigint;
  creditLimitMaxMinor?: bigint;
  /** The most one transfer may move; the deposit maximum when absent. */
  transferAmountMaxMinor?: bigint;
  /** The users group's view (each user's wallets). Harnesses that serve no user routes leave it out: no user is then known. */
  users?: TableReader<UserState>;
  /** Wallets one user may open, at most. */
  userWalletsMax?: number;
  /** How long GET /check waits for ?after=<position> before answering without it. */
  checkAfterWaitMs?: number;
  /** The clock that stamps accepted commands; tests pass their own. */
  nowMs?: () => number;
  /** Who may do what; open (no tokens) when absent. */
  auth?: Auth;
  /** Writes in flight (awaiting the log, or their decision with `Prefer: wait`), at most; more are shed with 503 overloaded. */
  writesInFlightMax?: number;
  /** Requests waiting for the view (`Prefer: wait`, `?after=`), at most; more answer without waiting. */
  viewWaitsMax?: number;
  /**
   * The service's shutdown: `draining` once SIGTERM came (GET /ready answers 503), and
   * `closing` resolved when the server stops taking requests; waits for a decision or
   * a position end then, answering what they have.
   */
  shutdown?: { readonly draining: boolean; readonly closing: Promise<void> };
  /** Manual flag events (PUT/DELETE /wallets/{wallet_id}/flag); the routes answer 503 without it. */
  flagEvents?: Emitter<FlagChange>;
}

/**
 * Writes this API instance accepted and has not seen decided, at most; the oldest are
 * forgotten first. A repeat of a forgotten one that is still undecided is emitted
 * again (the actor applies it once), and a conflicting one is caught by the actor.
 */
const PENDING_ENTRIES_MAX = 10_000;

interface Pending {
  fingerprint: string;
  body: Record<string, unknown>;
  position: RecordPosition;
}

// A route's validated parts: params, query, headers and body, by name.
type Parts = { params: Record<string, string>; query: Record<string, string | undefined>; headers: Record<string, string | undefined>; body: Record<string, unknown> };
type Handler = (c: Context, parts: Parts) => Promise<Response> | Response;

/**
 * The HTTP API on Hono. It validates at the edge with the route declarations of
 * routes.ts (which are also the OpenAPI document), emits commands to the log, and
 * answers reads from the table views; it keeps no state of its own beyond the writes
 * it is waiting on.
 */
export function createApp(deps: AppDeps): OpenAPIHono {
  const app = new OpenAPIHono();
  const nowMs = deps.nowMs ?? Date.now;
  const transferAmountMaxMinor = deps.transferAmountMaxMinor ?? deps.depositAmountMaxMinor;
  const spec = routes({ amountMaxMinor: deps.depositAmountMaxMinor, creditLimitMaxMinor: deps.creditLimitMaxMinor ?? deps.depositAmountMaxMinor, transferAmountMaxMinor });
  const pending = new PendingWrites(PENDING_ENTRIES_MAX);
  let closing = false;
  /** The waits for the view under way: the server's close ends them all at once. */
  const closingWaits = new Set<() => void>();
  void deps.shutdown?.closing.then(() => {
    closing = true;
    for (const release of closingWaits) release();
  });

  const auth = deps.auth ?? new Auth(NO_TOKENS);
  /**
   * Waits for the view to include a position, or until the server is closing. At most
   * `viewWaitsMax` requests wait at once; past it one answers at once with what the
   * view has (`included: false`, `202 pending`), as when its wait runs out.
   */
  const viewWaitsMax = deps.viewWaitsMax ?? VIEW_WAITS_MAX_DEFAULT;
  let viewWaits = 0;
  const viewWait = async (position: RecordPosition, waitMs: number) => {
    if (viewWaits >= viewWaitsMax || closing) return deps.balances.waitFor(position, 0);
    viewWaits++;
    // Raced with a promise of its own, which the close releases. Racing with the
    // long-lived `closing` promise itself would add a reaction to it per wait, each kept
    // until shutdown: about 128 bytes leaked per `?after=` or `Prefer: wait`.
    let release!: () => void;
    const closed = new Promise<boolean>((resolve) => (release = () => resolve(false)));
    closingWaits.add(release);
    try {
      return await Promise.race([deps.balances.waitFor(position, waitMs), closed]);
    } finally {
      closingWaits.delete(release);
      viewWaits--;
    }
  };

  app.onError((error, c) => {
    if (error instanceof ApiError) return errorResponse(c, error);
    // Refusals of Hono's own middleware keep their status, in our error shape; bearerAuth's
    // carry their JSON body already, and the WWW-Authenticate challenge.
    if (error instanceof HTTPException && error.status < 500) {
      if (error.res?.headers.get("content-type")?.startsWith("application/json")) return error.getResponse();
      const refusal = errorResponse(c, new ApiError(error.status as 400, httpCode(error.status), error.message || "the request was refused"));
      const challenge = error.res?.headers.get("www-authenticate");
      if (challenge) refusal.headers.set("WWW-Authenticate", challenge);
      return refusal;
    }
    console.error("unhandled error", error);
    return errorResponse(c, new ApiError(500, "internal_error", "the server failed to handle the request"));
  });
  app.notFound((c) => errorResponse(c, new ApiError(404, "route_not_found", `no route for ${c.req.method} ${c.req.path}`)));

  /** A wallet as GET /wallets/{wallet_id} shows it. */
  const walletBody = (walletId: string) => {
    const state = deps.balances.get(walletId) ?? initialWallet();
    const flag = deps.flags.get(walletId);
    const asOfMs = Math.min(deps.balances.status().asOfMs, deps.flags.status().asOfMs);
    const raw = (minor: bigint) => new RawNumber(formatMinor(minor));
    return {
      wallet_id: walletId,
      balance: raw(state.balanceMinor),
      available: raw(available(state)),
      held: raw(state.heldMinor),
      credit_limit: raw(state.creditLimitMinor),
      above_threshold: flag?.flagged ?? false,
      flag: flagBody(flag),
      user_id: state.userId || null,
      opened_at: state.openedMs === null ? null : new Date(state.openedMs).toISOString(),
      deposit_count: state.depositCount,
      withdrawal_count: state.withdrawalCount,
      reversal_count: state.reversalCount,
      transfer_out_count: state.transferOutCount,
      transfer_in_count: state.transferInCount,
      pending_transfer_count: state.pendingTransferCount,
      rejected_count: state.rejectedOperationCount,
      entry_count: state.entryCount,
      as_of: new Date(asOfMs).toISOString(),
      stale: Date.now() - asOfMs > VIEW_STALE_AFTER_MS,
    };
  };

  /**
   * Registers a route for the document, and serves it with its declaration as the
   * validator, behind the auth its role needs: reads "read", other methods "write",
   * admin actions "admin", and null for probes that are always open.
   */
  const paths: string[] = [];
  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", { type: "http", scheme: "bearer", description: "A token from API_TOKENS (writes), ADMIN_TOKENS (admin actions) or READ_TOKENS (reads, when set). With no tokens configured the service is open." });
  /**
   * Writes in flight are bounded: past `writesInFlightMax` a write is refused at once,
   * before its body is read, with 503 and Retry-After, so that overload costs a short
   * answer instead of growing the queue, the latency and the memory of the others.
   */
  const writesInFlightMax = deps.writesInFlightMax ?? WRITES_IN_FLIGHT_MAX_DEFAULT;
  let writesInFlight = 0;
  const shed = (route: RouteConfig, handler: Handler) => async (c: Context) => {
    if (writesInFlight >= writesInFlightMax) {
      throw new ApiError(503, "overloaded", `${writesInFlight} writes are in flight, the most this instance takes (WRITES_IN_FLIGHT_MAX); nothing was stored: retry after Retry-After`, {
        headers: { "Retry-After": String(RETRY_AFTER_SECONDS) },
      });
    }
    writesInFlight++;
    try {
      return await handler(c, await validated(c, route));
    } finally {
      writesInFlight--;
    }
  };
  const endpoint = (route: RouteConfig, handler: Handler, role: Role | null = route.method === "get" ? "read" : "write") => {
    app.openAPIRegistry.registerPath(role === null ? route : secured(route, role));
    const path = route.path.replace(/\{(\w+)\}/g, ":$1");
    if (!paths.includes(path)) paths.push(path);
    const serve = role === "write" || role === "admin" ? shed(route, handler) : async (c: Context) => handler(c, await validated(c, route));
    const guard = role === null ? undefined : auth.guard(role);
    if (guard) app.on(route.method.toUpperCase(), path, guard, serve);
    else app.on(route.method.toUpperCase(), path, serve);
  };

  /** A transfer's outcome at its source, once the destination's answer came back. */
  const outcomeOf = (walletId: string, operationId: string, applied: AppliedRecord<OperationRecord>) =>
    applied.record?.pending ? deps.balances.applied(walletId, scopedId({ scope: TRANSFER_SCOPE }, transferStepId({ step: "credit_applied", transferId: operationId, fromWalletId: walletId }))) : undefined;
  const opBody = (walletId: string, operationId: string, applied: AppliedRecord<OperationRecord>) =>
    operationBody(walletId, operationId, applied, deps.commands.topic.name, outcomeOf(walletId, operationId, applied));

  /**
   * A decision the client asked to wait for that is not final yet: a transfer the
   * source has held, whose destination has not answered. Polled until it is, or until
   * `deadline`; the source's view has the outcome once its actor has settled it.
   */
  const untilFinal = async (walletId: string, operationId: string, decided: AppliedRecord<OperationRecord>, deadline: number) => {
    while (decided.record?.pending && !outcomeOf(walletId, operationId, decided) && Date.now() < deadline && !closing) await Bun.sleep(FINAL_POLL_MS);
    return decided;
  };

  /** How a write answers once decided, and when it conflicts; a plain operation by default. */
  interface WriteOptions {
    answer?: (c: Context, decided: AppliedRecord<OperationRecord>, headers: Record<string, string> | undefined) => Response;
    reused?: () => ApiError;
    /** Wait this long for the decision whatever `Prefer` says (POST /wallets answers with the wallet). */
    waitMs?: number;
  }

  /**
   * A write: the command is validated, emitted and answered 202 pending, or, with
   * `Prefer: wait`, with its decision. An id seen before answers as that operation,
   * or 409 if its content differs.
   */
  const write = async (c: Context, parts: Parts, command: WalletCommand, extra: (body: Record<string, unknown>) => Record<string, unknown> = (b) => b, options: WriteOptions = {}) => {
    const walletId = command.walletId;
    const key = `${walletId}\u0000${command.operationId}`;
    const fingerprint = commandFingerprint(command);
    const reused = options.reused ?? (() =>
      new ApiError(409, "idempotency_key_reused", `operation ${command.operationId} of wallet ${walletId} was sent before with other content (amount or kind); use a new Idempotency-Key or reference`));
    const waitMs = options.waitMs ?? preferWaitMs(parts.headers.prefer);
    const headers = options.waitMs === undefined ? waitHeaders(waitMs) : undefined;
    const answer = options.answer ?? ((c, decided, headers) => exactJson(c, 200, extra(opBody(walletId, command.operationId, decided)), headers));
    const deadline = Date.now() + (waitMs ?? 0);
    const applied = deps.balances.applied(walletId, command.operationId);
    if (applied) {
      if (applied.fingerprint !== fingerprint) throw reused();
      pending.delete(key);
      return answer(c, await untilFinal(walletId, command.operationId, applied, deadline), headers);
    }
    let held = pending.get(key);
    if (held && held.fingerprint !== fingerprint) throw reused();
    if (!held) {
      const position = await emitOrUnavailable(deps.commands, command, command.kind === "deposit" ? { operation_id: command.operationId, deposit_id: command.operationId } : { operation_id: command.operationId });
      held = {
        fingerprint,
        position,
        body: {
          operation_id: command.operationId,
          kind: command.kind,
          status: "pending",
          wallet_id: walletId,
          amount: command.kind === "deposit" || command.kind === "withdrawal" ? new RawNumber(formatMinor(command.amountMinor)) : command.kind === "credit_limit" ? new RawNumber(formatMinor(command.creditLimitMinor)) : null,
          // Pass as ?after=<position> to GET /check or the operation to read this write.
          position: `${position.partition}:${position.offset}`,
          created_at: new Date(command.eventTimeMs).toISOString(),
          description: command.description || undefined,
          reference: command.reference || undefined,
          reversal_of: command.kind === "reversal" ? command.reversalOf : undefined,
          to_wallet_id: command.kind === "transfer" ? command.toWalletId : undefined,
        },
      };
      if (command.kind === "transfer") held.body.amount = new RawNumber(formatMinor(command.amountMinor));
      if (command.kind === "open") held.body.amount = new RawNumber(formatMinor(command.initialAmountMinor));
      pending.set(key, held);
    }
    if (waitMs !== undefined && (await viewWait(held.position, waitMs))) {
      const decided = deps.balances.applied(walletId, command.operationId);
      // Included but not applied: the actor never decided it (dead-lettered).
      if (!decided) throw new ApiError(500, "operation_not_applied", `the command at ${held.body.position} was not applied; see ${deps.commands.topic.name}.dlq`);
      if (decided.fingerprint !== fingerprint) {
        pending.delete(key);
        throw reused();
      }
      pending.delete(key);
      return answer(c, await untilFinal(walletId, command.operationId, decided, deadline), headers);
    }
    return exactJson(c, 202, extra(held.body), headers);
  };

  /** The operation id of a write: Idempotency-Key, else the body's reference, else a UUIDv7. */
  const operationId = (parts: Parts) => {
    const id = parts.headers["idempotency-key"] ?? (parts.body.reference as string | undefined) ?? Bun.randomUUIDv7();
    if (id.startsWith(REVERSAL_ID_PREFIX)) throw new ApiError(400, "operation_id_reserved", `ids starting with "${REVERSAL_ID_PREFIX}" are reserved for reversals`);
    if (id === OPEN_OPERATION_ID) throw new ApiError(400, "operation_id_reserved", `the id "${OPEN_OPERATION_ID}" is reserved for a wallet's opening`);
    return id;
  };
  const common = (parts: Parts) => ({ eventTimeMs: nowMs(), description: (parts.body.description as string | undefined) ?? "", reference: (parts.body.reference as string | undefined) ?? "" });

  endpoint(spec.deposit, (c, parts) => {
    const amountMinor = money(parseAmount(parts.body.amount, deps.depositAmountMaxMinor));
    // The seed's field, kept: the deposit's id is its operation id.
    return write(c, parts, { kind: "deposit", operationId: operationId(parts), walletId: parts.body.wallet_id as string, amountMinor, ...common(parts) }, (body) => ({ deposit_id: body.operation_id, ...body }));
  });

  endpoint(spec.withdraw, (c, parts) => {
    const amountMinor = money(parseAmount(parts.body.amount, deps.depositAmountMaxMinor));
    return write(c, parts, { kind: "withdrawal", operationId: operationId(parts), walletId: parts.body.wallet_id as string, amountMinor, ...common(parts) });
  });

  endpoint(spec.transfer, (c, parts) => {
    const amountMinor = money(parseAmount(parts.body.amount, transferAmountMaxMinor));
    const from = parts.body.from_wallet_id as string;
    return write(c, parts, { kind: "transfer", operationId: operationId(parts), walletId: from, toWalletId: parts.body.to_wallet_id as string, amountMinor, ...common(parts) });
  });

  const users = deps.users;
  const walletsOf = (userId: string) => users?.get(userId)?.wallets ?? [];

  endpoint(spec.openWallet, (c, parts) => {
    const walletId = (parts.body.wallet_id as string | undefined) ?? Bun.randomUUIDv7();
    const userId = (parts.body.user_id as string | undefined) ?? "";
    const initialAmountMinor = parts.body.initial_amount === undefined ? 0n : money(parseCreditLimit(parts.body.initial_amount, deps.depositAmountMaxMinor, "initial_amount"));
    const command: WalletCommand = { kind: "open", operationId: OPEN_OPERATION_ID, walletId, userId, initialAmountMinor, eventTimeMs: nowMs(), description: "", reference: "" };
    const exists = () => new ApiError(409, "wallet_exists", `wallet ${walletId} was opened before with other content (user or initial amount)`);
    const max = deps.userWalletsMax ?? Number.POSITIVE_INFINITY;
    if (userId !== "" && !deps.balances.applied(walletId, OPEN_OPERATION_ID) && walletsOf(userId).length >= max) {
      throw new ApiError(409, "user_wallets_exceed_max", `user ${userId} has ${max} wallets, the most one may have`);
    }
    return write(c, parts, command, undefined, {
      reused: exists,
      waitMs: OPEN_WAIT_SECONDS * 1000,
      answer: (c, decided) => {
        if (decided.outcome !== "applied") return exactJson(c, 200, opBody(walletId, OPEN_OPERATION_ID, decided));
        return c.body(stringify({ ...walletBody(walletId), operation_id: OPEN_OPERATION_ID }), 201, { "content-type": "application/json; charset=UTF-8", Location: `/wallets/${encodeURIComponent(walletId)}` });
      },
    });
  });

  endpoint(spec.userWallets, (c, parts) => {
    const userId = parts.params.user_id!;
    return exactJson(c, 200, { user_id: userId, wallets: walletsOf(userId).map((w) => walletBody(w.walletId)) });
  });

  endpoint(spec.userActivity, (c, parts) => {
    const userId = parts.params.user_id!;
    const limit = parseLimit(parts.query.limit);
    const wallets = walletsOf(userId).map((w) => w.walletId);
    const before = parseActivityCursor(parts.query.cursor, wallets);
    // Each wallet's entries are in recorded order already; merge the newest of each.
    const rows = wallets.flatMap((walletId) => deps.balances.entries(walletId, before.get(walletId) ?? Number.MAX_SAFE_INTEGER, limit + 1).map((row) => ({ walletId, row, record: row.record! })));
    rows.sort((a, b) => b.record.decidedMs - a.record.decidedMs || (a.walletId < b.walletId ? -1 : a.walletId > b.walletId ? 1 : 0) || b.record.entryId - a.record.entryId);
    const page = rows.slice(0, limit);
    for (const { walletId, record } of page) before.set(walletId, record.entryId);
    return exactJson(c, 200, {
      user_id: userId,
      entries: page.map(({ walletId, row }) => ({ wallet_id: walletId, ...entryBody(row) })),
      next_cursor: rows.length > limit ? encodeActivityCursor(before) : null,
    });
  });

  endpoint(spec.creditLimit, (c, parts) => {
    const creditLimitMinor = money(parseCreditLimit(parts.body.credit_limit, deps.creditLimitMaxMinor ?? deps.depositAmountMaxMinor));
    return write(c, parts, { kind: "credit_limit", operationId: operationId(parts), walletId: parts.params.wallet_id!, creditLimitMinor, ...common(parts) });
  }, "admin");

  const flagWallet = (flagged: boolean) => async (c: Context, parts: Parts) => {
    const emitter = deps.flagEvents;
    if (!emitter) throw new ApiError(503, "log_unavailable", "this API instance cannot write flag events", { headers: { "Retry-After": String(RETRY_AFTER_SECONDS) } });
    const eventId = parts.headers["idempotency-key"] ?? `manual:${Bun.randomUUIDv7()}`;
    const walletId = parts.params.wallet_id!;
    const position = await emitOrUnavailable(emitter, { eventId, walletId, flagged, reason: "manual", eventTimeMs: nowMs() }, { event_id: eventId });
    return exactJson(c, 202, { event_id: eventId, wallet_id: walletId, flagged, status: "pending", position: `${position.partition}:${position.offset}` });
  };
  endpoint(spec.flag, flagWallet(true), "admin");
  endpoint(spec.unflag, flagWallet(false), "admin");

  endpoint(spec.reverse, (c, parts) => {
    const target = parts.params.operation_id!;
    // Only an operation the wallet has decided can be judged reversible; the actor
    // would dead-letter a reversal of one it does not know.
    if (!deps.balances.applied(parts.params.wallet_id!, target)) {
      throw new ApiError(404, "operation_not_found", `wallet ${parts.params.wallet_id} has no decided operation ${target} to reverse (yet: a write just accepted may take a moment)`);
    }
    return write(c, parts, { kind: "reversal", operationId: reversalId(target), walletId: parts.params.wallet_id!, reversalOf: target, eventTimeMs: nowMs(), description: "", reference: "" });
  }, "admin");

  endpoint(spec.operation, async (c, parts) => {
    const walletId = parts.params.wallet_id!;
    const id = parts.params.operation_id!;
    const after = parsePosition(parts.query.after);
    if (after) await viewWait({ topic: deps.commands.topic.name, ...after }, deps.checkAfterWaitMs ?? CHECK_AFTER_WAIT_MS_DEFAULT);
    const applied = deps.balances.applied(walletId, id);
    const held = pending.get(`${walletId}\u0000${id}`);
    if (applied && held && held.fingerprint !== applied.fingerprint && parts.query.after === held.body.position) {
      // Asked with the position of a write this instance took under this id, which lost
      // to another with other content: that write's status is the refusal.
      throw new ApiError(409, "idempotency_key_reused", `the write at position ${held.body.position} lost: operation ${id} holds other content (amount or kind)`);
    }
    if (applied) return exactJson(c, 200, opBody(walletId, id, applied));
    if (held) return exactJson(c, 200, held.body);
    throw new ApiError(404, "operation_not_found", `wallet ${walletId} has no operation ${id} (yet: pass ?after=<position> to wait for a write)`);
  });

  endpoint(spec.wallet, (c, parts) => exactJson(c, 200, walletBody(parts.params.wallet_id!)));

  endpoint(spec.history, (c, parts) => {
    const walletId = parts.params.wallet_id!;
    const limit = parseLimit(parts.query.limit);
    const before = parseCursor(parts.query.cursor);
    const rows = deps.balances.entries(walletId, before, limit + 1);
    const page = rows.slice(0, limit);
    const entries = page.map((row) => entryBody(row));
    const last = page[page.length - 1]?.record;
    return exactJson(c, 200, { wallet_id: walletId, entries, next_cursor: rows.length > limit && last ? String(last.entryId) : null });
  });

  endpoint(spec.balanceAt, (c, parts) => {
    const walletId = parts.params.wallet_id!;
    const atMs = parseTime(parts.query.at);
    const row = deps.balances.entryAt(walletId, atMs);
    return exactJson(c, 200, {
      wallet_id: walletId,
      at: new Date(atMs).toISOString(),
      balance: new RawNumber(formatMinor(row?.record?.balanceAfterMinor ?? 0n)),
      entry_id: row?.record?.entryId ?? null,
    });
  });

  endpoint(spec.check, async (c, parts) => {
    const walletId = parts.params.wallet_id!;
    const after = parsePosition(parts.query.after);
    // Read your writes: the position a write returned is in the balance view once the
    // wallet's actor has applied it.
    const position = after && { topic: deps.commands.topic.name, ...after };
    const included = position ? await viewWait(position, deps.checkAfterWaitMs ?? CHECK_AFTER_WAIT_MS_DEFAULT) : undefined;
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
      flag: flagBody(flag),
      after: after ? { position: `${after.partition}:${after.offset}`, included } : undefined,
      as_of: new Date(asOfMs).toISOString(),
      stale: Date.now() - asOfMs > VIEW_STALE_AFTER_MS,
    });
  });

  endpoint(spec.health, (c) => c.json({ status: "ok" }), null);

  endpoint(spec.ready, async (c) => {
    if (deps.shutdown?.draining) return c.json({ status: "draining", log: "shutting down: SIGTERM", views_caught_up: {} }, 503);
    const health = await deps.health.check();
    const views = { balances: deps.balances.status().caughtUp, flags: deps.flags.status().caughtUp, users: deps.users?.status().caughtUp ?? true };
    const ready = health.up && views.balances && views.flags && views.users;
    const log = health.up ? "ok" : `unavailable since ${new Date(health.sinceMs).toISOString()}: ${health.reason}`;
    return c.json({ status: ready ? "ready" : "not_ready", log, views_caught_up: views }, ready ? 200 : 503);
  }, null);

  const document = () => app.getOpenAPI31Document(OPENAPI_INFO);
  let cached: { json: string; html: string } | undefined;
  const docs = () => (cached ??= { json: JSON.stringify(document()), html: renderDocs(document()) });
  app.get("/openapi.json", (c) => c.body(docs().json, 200, { "content-type": "application/json; charset=UTF-8" }));
  app.get("/docs", (c) => c.html(docs().html));
  paths.push("/openapi.json", "/docs");

  for (const path of paths) {
    app.all(path, (c) => errorResponse(c, new ApiError(405, "method_not_allowed", `${c.req.method} is not allowed on ${c.req.path}`)));
  }
  return app;
}

const OPENAPI_INFO = {
  openapi: "3.1.0",
  info: {
    title: "Depositaja",
    version: "0.4.0",
    description:
      "An event-driven wallet ledger. Writes are commands decided by the wallet's actor: they answer 202 `pending`, or the decision with `Prefer: wait=<seconds>`. A rejection is a decision (200, `status: rejected`), not an HTTP error. Every refusal of a request is `{\"error\":{\"code\",\"message\"}}`.",
  },
};

/**
 * Writes waiting for their decision, by wallet and id, at most about `max`: two
 * generations, the older dropped whole when the newer fills (O(1), where evicting the
 * oldest entry of one Map one at a time walks the holes its deletions left).
 */
class PendingWrites {
  private current = new Map<string, Pending>();
  private previous = new Map<string, Pending>();

  constructor(private readonly max: number) {}

  get(key: string): Pending | undefined {
    return this.current.get(key) ?? this.previous.get(key);
  }

  set(key: string, value: Pending): void {
    if (this.current.size >= this.max / 2) {
      this.previous = this.current;
      this.current = new Map();
    }
    this.current.set(key, value);
  }

  delete(key: string): void {
    this.current.delete(key);
    this.previous.delete(key);
  }
}

/** Query schemas that accept an empty query: a request without one skips parsing it. */
const emptyQueryPasses = new WeakMap<object, boolean>();

/** Validates a request against its route declaration: params, query, headers, body. */
async function validated(c: Context, route: RouteConfig): Promise<Parts> {
  const request = route.request;
  const parts: Parts = { params: {}, query: {}, headers: {}, body: {} };
  if (request?.params) {
    if (c.req.url.includes("%")) checkPercentEncoding(c, route);
    parts.params = check(request.params as ZodType, c.req.param());
  }
  if (request?.headers) {
    // Only the headers the route declares: collecting all of them costs more than the rest.
    const schema = request.headers as ZodType & { shape: Record<string, unknown> };
    const raw: Record<string, string | undefined> = {};
    for (const name in schema.shape) raw[name] = c.req.header(name);
    if (raw["idempotency-key"] !== undefined) raw["idempotency-key"] = utf8Header(raw["idempotency-key"], "idempotency_key");
    parts.headers = check(schema, raw);
  }
  const query = request?.query as ZodType | undefined;
  if (query) {
    let passes = emptyQueryPasses.get(query);
    if (passes === undefined) emptyQueryPasses.set(query, (passes = query.safeParse({}).success));
    if (!passes || c.req.url.includes("?")) parts.query = check(query, c.req.query());
  }
  const media = request?.body?.content["application/json"];
  const body = media && "schema" in media ? media.schema : undefined;
  if (body) parts.body = check(body as ZodType, await readJsonObject(c));
  else if (route.method !== "get") await readNoBody(c);
  return parts;
}

/**
 * A route that takes no body still reads it to its end before it acts: a request whose
 * body is cut short or broken (bad chunking) must not store anything, yet its headers
 * alone arrive first. The body must be empty, or `{}` for clients that always send JSON.
 */
async function readNoBody(c: Context): Promise<void> {
  const text = await readBodyText(c);
  if (text.trim() !== "" && text.replace(/\s+/g, "") !== "{}") {
    throw new ApiError(400, "body_must_be_empty", "this route takes no body: send none, or {}");
  }
}

/**
 * Percent-encoding in the path must decode: Hono keeps `%ff` as it came, which would make
 * `/wallets/%ff` the wallet `%ff` (the same one `/wallets/%25ff` names). Checked per
 * parameter, so the answer names it.
 */
function checkPercentEncoding(c: Context, route: RouteConfig): void {
  const url = c.req.url;
  const start = url.indexOf("/", url.indexOf("//") + 2);
  const end = url.indexOf("?", start);
  const segments = url.slice(start, end < 0 ? undefined : end).split("/");
  const template = route.path.split("/");
  template.forEach((part, i) => {
    const name = /^\{(\w+)\}$/.exec(part)?.[1];
    if (!name || !segments[i]?.includes("%")) return;
    try {
      decodeURIComponent(segments[i]!);
    } catch {
      throw new ApiError(400, `${name}_must_be_valid_unicode`, `${name} in the path has percent-encoding that is not UTF-8 (encode % itself as %25)`);
    }
  });
}

/**
 * A header value as the UTF-8 text its bytes spell. Header values are bytes (RFC 9110);
 * Bun hands each byte over as one Latin-1 character, so "é" sent as UTF-8 arrives as
 * "Ã©". An Idempotency-Key is text, like the ids it stands for: its bytes must be UTF-8.
 */
function utf8Header(value: string, field: string): string {
  if (!/[^\u0000-\u007f]/.test(value)) return value;
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(Buffer.from(value, "latin1"));
  } catch {
    throw new ApiError(400, `${field}_must_be_utf8`, `${field} must be UTF-8 text; its bytes are not`);
  }
}

/** Parses with a route's schema; the first broken rule is the answer, with its code. */
function check<T>(schema: ZodType, raw: Record<string, unknown>): T {
  const result = schema.safeParse(raw);
  if (result.success) return result.data as T;
  const issue = result.error.issues[0]!;
  const field = String(issue.path[0] ?? "body").replaceAll("-", "_");
  const value = raw[String(issue.path[0])];
  const params = (issue as { params?: { code?: string } }).params;
  if (params?.code) throw new ApiError(400, params.code, issue.message);
  // null stands for "absent" only where the field is required; an optional one (a
  // description) given null has the wrong type, like any other non-string.
  const optional = value === null && (schema as ZodType & { shape?: Record<string, ZodType> }).shape?.[String(issue.path[0])]?.safeParse(undefined).success;
  if ((value === undefined || value === null) && !optional) throw new ApiError(400, `${field}_is_required`, `${field} is required`);
  if (issue.code === "invalid_union") throw new ApiError(400, `${field}_must_be_number_or_string`, `${field} must be a JSON number or a decimal string`);
  if (issue.code === "invalid_type") throw new ApiError(400, `${field}_must_be_${issue.expected}`, `${field} must be a ${issue.expected}`);
  if (issue.code === "too_big") throw new ApiError(400, `${field}_too_long`, `${field} is too long: ${issue.message}`);
  throw new ApiError(400, `${field}_is_invalid`, `${field}: ${issue.message}`);
}

function money(result: { ok: true; minor: bigint } | { ok: false; code: string; message: string }): bigint {
  // The schema judged the same value; a difference here is a bug, not a request error.
  if (!result.ok) throw new ApiError(400, result.code, result.message);
  return result.minor;
}

/** `Prefer: wait=<seconds>` (RFC 7240), capped; a malformed preference is ignored, as the RFC says. */
function preferWaitMs(prefer: string | undefined): number | undefined {
  if (prefer === undefined) return undefined;
  for (const token of prefer.split(",")) {
    const match = /^\s*wait\s*=\s*"?(\d{1,6})"?\s*$/i.exec(token);
    if (match) return Math.min(Number(match[1]), PREFER_WAIT_SECONDS_MAX) * 1000;
  }
  return undefined;
}

function waitHeaders(waitMs: number | undefined): Record<string, string> | undefined {
  return waitMs === undefined ? undefined : { "Preference-Applied": `wait=${waitMs / 1000}` };
}

function flagBody(flag: FlagState | undefined) {
  return flag?.flagged ? { reason: flag.reason, flagged_at: flag.changedTimeMs === null ? null : new Date(flag.changedTimeMs).toISOString() } : null;
}

/**
 * An operation as the API shows it, from its record. A transfer the source has held is
 * `pending` until its outcome (the destination's answer, settled by the source) is
 * recorded: then it is that outcome's status, entry and time.
 */
function operationBody(walletId: string, operationId: string, applied: AppliedRecord<OperationRecord>, commandsTopic: string, outcome?: AppliedRecord<OperationRecord>): Record<string, unknown> {
  const r = applied.record;
  const final = r?.pending ? outcome : applied;
  const status = final === undefined ? "pending" : final.outcome === "applied" ? "settled" : "rejected";
  const decided = final?.record;
  const [topic, partition, offset] = (r?.position ?? "").split(":");
  return {
    operation_id: operationId,
    kind: r?.kind ?? "deposit",
    status,
    reason: status === "rejected" ? final!.outcome : undefined,
    wallet_id: walletId,
    amount: r ? new RawNumber(formatMinor(r.amountMinor)) : null,
    // Positions are on `commands`; a deposit from a trusted producer on `deposits` has none to pass.
    position: topic === commandsTopic ? `${partition}:${offset}` : null,
    created_at: r ? new Date(r.createdMs).toISOString() : undefined,
    decided_at: decided ? new Date(decided.decidedMs).toISOString() : undefined,
    description: r?.description || undefined,
    reference: r?.reference || undefined,
    entry_id: decided && decided.entryId > 0 ? decided.entryId : undefined,
    balance_after: decided && decided.entryId > 0 ? new RawNumber(formatMinor(decided.balanceAfterMinor)) : undefined,
    reversal_of: r?.reversalOf || undefined,
    to_wallet_id: r?.kind === "transfer" ? r.counterpartyWalletId : undefined,
    expires_at: status === "pending" && r?.expiresMs != null ? new Date(r.expiresMs).toISOString() : undefined,
  };
}

/** Entry kinds that bring money in; the others take it out. */
const MONEY_IN = new Set(["deposit", "transfer_in", "open"]);

function entryBody(row: AppliedRecord<OperationRecord>): Record<string, unknown> {
  const r = row.record!;
  const signed = MONEY_IN.has(r.kind) ? r.amountMinor : -r.amountMinor;
  return {
    entry_id: r.entryId,
    // A transfer's entries are kept under their step's id, and carry the transfer's.
    operation_id: r.operationId || row.eventId,
    kind: r.kind,
    amount: new RawNumber(formatMinor(signed)),
    balance_after: new RawNumber(formatMinor(r.balanceAfterMinor)),
    event_time: new Date(r.createdMs).toISOString(),
    recorded_at: new Date(r.decidedMs).toISOString(),
    description: r.description || undefined,
    counterparty_wallet_id: r.counterpartyWalletId || undefined,
  };
}

/**
 * The activity cursor: per wallet, the entry number the next page starts below, as
 * base64url JSON. Wallets not in it start from their newest entry.
 */
function encodeActivityCursor(before: Map<string, number>): string {
  return Buffer.from(JSON.stringify(Object.fromEntries(before))).toString("base64url");
}

function parseActivityCursor(text: string | undefined, wallets: string[]): Map<string, number> {
  const before = new Map<string, number>();
  if (text === undefined) return before;
  const invalid = () => new ApiError(400, "cursor_invalid", "cursor must be a next_cursor this API returned");
  let parsed: unknown;
  try {
    if (text.length > 16_384 || !/^[A-Za-z0-9_-]+$/.test(text)) throw invalid();
    parsed = JSON.parse(Buffer.from(text, "base64url").toString("utf8"));
  } catch {
    throw invalid();
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw invalid();
  for (const [walletId, entry] of Object.entries(parsed)) {
    if (!Number.isSafeInteger(entry) || (entry as number) < 1) throw invalid();
    if (wallets.includes(walletId)) before.set(walletId, entry as number);
  }
  return before;
}

function parseLimit(text: string | undefined): number {
  if (text === undefined) return HISTORY_LIMIT_DEFAULT;
  if (!/^\d{1,3}$/.test(text) || Number(text) < 1 || Number(text) > HISTORY_LIMIT_MAX) {
    throw new ApiError(400, "limit_out_of_range", `limit must be a whole number from 1 to ${HISTORY_LIMIT_MAX}`);
  }
  return Number(text);
}

function parseCursor(text: string | undefined): number {
  if (text === undefined) return Number.MAX_SAFE_INTEGER;
  if (!/^[1-9]\d{0,14}$/.test(text)) throw new ApiError(400, "cursor_invalid", "cursor must be a next_cursor this API returned");
  return Number(text);
}

const RFC_3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;

function parseTime(text: string | undefined): number {
  const ms = text !== undefined && RFC_3339.test(text) ? Date.parse(text.replace(" ", "T")) : Number.NaN;
  // Date.parse rolls impossible dates over (February 30th is March 2nd): refuse them.
  const [, y, mo, d, h, mi, sec] = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})/.exec(text ?? "") ?? [];
  const calendar = Number(d) <= new Date(Date.UTC(Number(y), Number(mo), 0)).getUTCDate() && Number(h) < 24 && Number(mi) < 60 && Number(sec) < 60;
  if (!Number.isFinite(ms) || !calendar) throw new ApiError(400, "at_must_be_rfc3339", 'at must be an RFC 3339 time such as "2026-11-22T10:00:00Z"');
  return ms;
}

const CHECK_AFTER_WAIT_MS_DEFAULT = 2_000;
/** How often a write waiting for a transfer's outcome looks at the view again. */
const FINAL_POLL_MS = 5;
const POSITION = /^(\d{1,4}):(\d{1,15})$/;

/** Parses ?after=<partition>:<offset>, as POST /deposit returns it in `position`. */
function parsePosition(text: string | undefined): { partition: number; offset: number } | undefined {
  if (text === undefined) return undefined;
  const match = POSITION.exec(text);
  if (!match) throw new ApiError(400, "after_must_be_position", 'after must be a position "<partition>:<offset>" from POST /deposit, such as "9:0"');
  return { partition: Number(match[1]), offset: Number(match[2]) };
}

function exactJson(c: Context, status: 200 | 202, body: unknown, headers?: Record<string, string>): Response {
  return c.body(stringify(body), status, { "content-type": "application/json; charset=UTF-8", ...headers });
}

/** Money fields of request bodies: their numbers are judged by the digits sent. */
const MONEY_FIELDS = new Set(["amount", "credit_limit", "initial_amount"]);

/**
 * Reads the body as a JSON object whatever the Content-Type says: the seed's own curl
 * sends none, so curl labels it application/x-www-form-urlencoded. Only multipart
 * bodies are refused outright, since they cannot be JSON.
 */
async function readJsonObject(c: Context): Promise<Record<string, unknown>> {
  const contentType = c.req.header("content-type") ?? "";
  if (/^multipart\//i.test(contentType)) {
    throw new ApiError(415, "body_must_be_json", "send the body as JSON, not multipart form data");
  }
  // Refused before reading when the length is declared; a chunked body is read (Bun.serve
  // bounds it at MAX_REQUEST_BODY_BYTES) and then judged.
  if (Number(c.req.header("content-length") ?? 0) > BODY_BYTES_MAX) throw bodyTooLarge();
  const text = await readBodyText(c);
  let body: unknown;
  // A money number is replaced by the exact decimal its source text stands for (JSON.parse
  // source text access), so it is judged by the digits sent, not by a float:
  // 20.499999999999999 and 20499999999999999e-15 must not pass as 20.5.
  try {
    body = JSON.parse(text, function (this: object, key: string, value: unknown, context?: { source?: string }) {
      if (typeof value === "number" && MONEY_FIELDS.has(key) && context?.source !== undefined) return exactDecimal(context.source) ?? value;
      return value;
    } as (key: string, value: unknown) => unknown);
  } catch {
    throw new ApiError(400, "body_must_be_json", 'the body must be a JSON object such as {"wallet_id":"w1","amount":"20.50"}');
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new ApiError(400, "body_must_be_object", "the body must be a JSON object");
  }
  return body as Record<string, unknown>;
}

/** The whole body as UTF-8 text, at most BODY_BYTES_MAX bytes. */
async function readBodyText(c: Context): Promise<string> {
  try {
    const bytes = await c.req.arrayBuffer();
    // One turn of the loop lets Bun parse what came after the body on the connection: a
    // broken chunked trailer, or garbage pipelined behind this request, makes Bun answer
    // 400 and close it without this request's answer. The request is aborted by then,
    // and what no one will be told of must not be stored (nor stored again on a retry).
    await new Promise((resolve) => setImmediate(resolve));
    if (c.req.raw.signal.aborted) throw new DOMException("the connection closed after the body", "AbortError");
    if (bytes.byteLength > BODY_BYTES_MAX) throw bodyTooLarge();
    // Invalid UTF-8 would otherwise decode to U+FFFD and merge different wallet ids.
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (error) {
    if (error instanceof ApiError) throw error;
    // The client hung up (or its body broke off) before the body was whole: not our
    // error, and no one is left to answer; noted once per second at most, as what it is.
    if ((error as Error)?.name === "AbortError" || c.req.raw.signal.aborted) {
      hangUps.note(`${c.req.method} ${c.req.path}`);
      throw new ApiError(400, "body_incomplete", "the connection closed before the whole body arrived");
    }
    throw new ApiError(400, "body_must_be_utf8", "the body must be UTF-8 text");
  }
}

const bodyTooLarge = () => new ApiError(413, "body_too_large", `the body may be at most ${BODY_BYTES_MAX} bytes`);

/** Notes clients that hung up mid-body: one line per second at most, with the count since the last. */
const hangUps = {
  count: 0,
  loggedMs: 0,
  note(request: string): void {
    this.count++;
    const now = Date.now();
    if (now - this.loggedMs < 1_000) return;
    console.log(`client closed the connection before its body arrived (${request}${this.count > 1 ? `, ${this.count} such since the last note` : ""}); nothing was stored`);
    this.count = 0;
    this.loggedMs = now;
  },
};

/**
 * Emits, or refuses with 503. A failed or timed-out write may still have landed, so
 * the client is told the id to retry with (`fields`): the same id for the same wallet
 * counts once.
 */
async function emitOrUnavailable<T>(emitter: Emitter<T>, value: T, fields: Record<string, string>) {
  try {
    return await emitter.emit(value);
  } catch (error) {
    // The log being away is logged once, by the guard that noticed; anything else is news.
    if (!isRetryable(error)) console.error("emit failed:", error);
    const id = Object.values(fields)[0];
    throw new ApiError(503, "log_unavailable", `the write may not have been stored; retry with the header Idempotency-Key: ${id}`, {
      fields,
      headers: { "Retry-After": String(RETRY_AFTER_SECONDS) },
    });
  }
}

/** A route as the document shows it behind auth: its security, and the 401 and 403 it may answer. */
function secured(route: RouteConfig, role: Role): RouteConfig {
  const refusal = (description: string) => ({ content: { "application/json": { schema: ErrorBody } }, description });
  return {
    ...route,
    // Reads are open unless READ_TOKENS is set: the empty requirement says a token is optional.
    security: role === "read" ? [{}, { bearer: [] }] : [{ bearer: [] }],
    responses: {
      ...route.responses,
      401: refusal("`token_missing` or `token_invalid`: with tokens configured, send `Authorization: Bearer <token>`."),
      403: refusal(role === "admin" ? "`admin_token_required`: an admin action needs a token from ADMIN_TOKENS." : "`write_token_required`: a READ_TOKENS token may only read."),
    },
  };
}

/** Stable codes for refusals made by Hono's middleware, by status. */
function httpCode(status: number): string {
  const codes: Record<number, string> = { 400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "route_not_found", 413: "body_too_large", 415: "unsupported_media_type", 429: "too_many_requests" };
  return codes[status] ?? `http_${status}`;
}

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import type { BalanceState } from "../../actors/balance.js";
import type { FlagState } from "../../actors/flagger.js";
import type { ThresholdState } from "../../actors/threshold.js";
import type { DepositEvent, FlagChange, FlagReason } from "../../actors/types.js";
import { DepositSchema, FlagEventSchema, FlagReason as FlagReasonPb } from "../gen/depositaja/v1/events_pb.js";
import { AppliedEventSchema, BalanceTableValueSchema, FlaggerTableValueSchema, ThresholdTableValueSchema } from "../gen/depositaja/v1/tables_pb.js";

/**
 * Translation between protobuf on the wire and the plain values actors use. Decoding
 * is also validation: a record that decodes is one an actor can be given; anything
 * else throws a DecodeError naming the rule, and the runtime records it as rejected.
 */

export interface Codec<T> {
  encode(value: T): Uint8Array;
  decode(bytes: Uint8Array): T;
}

export class DecodeError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = "DecodeError";
  }
}

export const WALLET_ID_LENGTH_MAX = 128;
export const EVENT_ID_LENGTH_MAX = 128;
// Event times outside years 1970 to 9999 are mistakes, and would not fit RFC 3339.
const EVENT_TIME_MS_MAX = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

function toMs(timestamp: Timestamp | undefined, field: string): number {
  if (!timestamp) throw new DecodeError(`${field}_is_required`, `${field} is required`);
  // Milliseconds are the resolution of every time rule; finer digits are dropped.
  const ms = Number(timestamp.seconds) * 1000 + Math.floor(timestamp.nanos / 1_000_000);
  if (!Number.isSafeInteger(ms) || ms < 0 || ms > EVENT_TIME_MS_MAX) {
    throw new DecodeError(`${field}_out_of_range`, `${field} must lie in years 1970 to 9999`);
  }
  return ms;
}

const optionalMs = (t: Timestamp | undefined) => (t ? toMs(t, "time") : null);
const optionalTimestamp = (ms: number | null) => (ms === null ? undefined : timestampFromMs(ms));

// Control characters (C0, DEL, C1) in ids are always mistakes, and would be
// ambiguous in logs and in the runtime's composite keys.
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * Checks an id (wallet, deposit or event id): 1 to `max` characters (UTF-16 code
 * units, as JavaScript counts them), well-formed Unicode, no control characters. Returns the code of the
 * broken rule, or undefined. Shared by the API and the decoders, so an id the API
 * accepts is one the processors accept.
 */
export function idError(value: string, field: string, max: number): { code: string; message: string } | undefined {
  if (value.length === 0) return { code: `${field}_is_required`, message: `${field} is required` };
  if (value.length > max) return { code: `${field}_too_long`, message: `${field} may be at most ${max} characters` };
  if (CONTROL_CHARACTER.test(value)) return { code: `${field}_has_control_characters`, message: `${field} must not contain control characters` };
  // A lone surrogate has no UTF-8 form: encoding it for the log would turn it into
  // U+FFFD and credit another wallet.
  if (!value.isWellFormed()) return { code: `${field}_must_be_valid_unicode`, message: `${field} must be valid Unicode text` };
  return undefined;
}

function checkId(value: string, field: string, max: number): string {
  const error = idError(value, field, max);
  if (error) throw new DecodeError(error.code, error.message);
  return value;
}

function parse<T>(decode: () => T): T {
  try {
    return decode();
  } catch (error) {
    if (error instanceof DecodeError) throw error;
    throw new DecodeError("undecodable", `not a valid protobuf message: ${(error as Error).message}`);
  }
}

export const depositCodec: Codec<DepositEvent> = {
  encode: (d) =>
    toBinary(DepositSchema, create(DepositSchema, {
      depositId: d.depositId,
      walletId: d.walletId,
      amountMinor: d.amountMinor,
      eventTime: timestampFromMs(d.eventTimeMs),
    })),
  decode: (bytes) =>
    parse(() => {
      const m = fromBinary(DepositSchema, bytes);
      return {
        depositId: checkId(m.depositId, "deposit_id", EVENT_ID_LENGTH_MAX),
        walletId: checkId(m.walletId, "wallet_id", WALLET_ID_LENGTH_MAX),
        amountMinor: m.amountMinor,
        eventTimeMs: toMs(m.eventTime, "event_time"),
      };
    }),
};

const reasonToPb: Record<FlagReason, FlagReasonPb> = { threshold: FlagReasonPb.THRESHOLD, manual: FlagReasonPb.MANUAL };

function reasonFromPb(reason: FlagReasonPb): FlagReason {
  if (reason === FlagReasonPb.THRESHOLD) return "threshold";
  if (reason === FlagReasonPb.MANUAL) return "manual";
  throw new DecodeError("reason_is_unknown", `unknown flag reason ${reason}`);
}

export const flagCodec: Codec<FlagChange> = {
  encode: (f) =>
    toBinary(FlagEventSchema, create(FlagEventSchema, {
      eventId: f.eventId,
      walletId: f.walletId,
      flagged: f.flagged,
      reason: reasonToPb[f.reason],
      eventTime: timestampFromMs(f.eventTimeMs),
      windowStart: f.window ? timestampFromMs(f.window.startMs) : undefined,
      windowSumMinor: f.window?.sumMinor ?? 0n,
    })),
  decode: (bytes) =>
    parse(() => {
      const m = fromBinary(FlagEventSchema, bytes);
      const change: FlagChange = {
        eventId: checkId(m.eventId, "event_id", EVENT_ID_LENGTH_MAX),
        walletId: checkId(m.walletId, "wallet_id", WALLET_ID_LENGTH_MAX),
        flagged: m.flagged,
        reason: reasonFromPb(m.reason),
        eventTimeMs: toMs(m.eventTime, "event_time"),
      };
      if (m.windowStart) change.window = { startMs: toMs(m.windowStart, "window_start"), sumMinor: m.windowSumMinor };
      return change;
    }),
};

export const balanceTableCodec: Codec<BalanceState> = {
  encode: (s) =>
    toBinary(BalanceTableValueSchema, create(BalanceTableValueSchema, {
      balanceMinor: s.balanceMinor,
      depositCount: BigInt(s.depositCount),
      rejectedCount: BigInt(s.rejectedCount),
      lastDepositId: s.lastDepositId,
      lastDepositTime: optionalTimestamp(s.lastDepositTimeMs),
      lastRejectionCode: s.lastRejectionCode,
    })),
  decode: (bytes) => {
    const m = fromBinary(BalanceTableValueSchema, bytes);
    return {
      balanceMinor: m.balanceMinor,
      depositCount: Number(m.depositCount),
      rejectedCount: Number(m.rejectedCount),
      lastDepositId: m.lastDepositId,
      lastDepositTimeMs: optionalMs(m.lastDepositTime),
      lastRejectionCode: m.lastRejectionCode,
    };
  },
};

export const thresholdTableCodec: Codec<ThresholdState> = {
  encode: (s) =>
    toBinary(ThresholdTableValueSchema, create(ThresholdTableValueSchema, {
      entries: s.entries.map((e) => ({ eventTime: timestampFromMs(e.timeMs), amountMinor: e.amountMinor })),
      newestEventTime: optionalTimestamp(s.newestTimeMs),
      firstBreachTime: optionalTimestamp(s.firstBreachTimeMs),
      evictedCount: BigInt(s.evictedCount),
    })),
  decode: (bytes) => {
    const m = fromBinary(ThresholdTableValueSchema, bytes);
    return {
      entries: m.entries.map((e) => ({ timeMs: toMs(e.eventTime, "event_time"), amountMinor: e.amountMinor })),
      newestTimeMs: optionalMs(m.newestEventTime),
      firstBreachTimeMs: optionalMs(m.firstBreachTime),
      evictedCount: Number(m.evictedCount),
    };
  },
};

export const flaggerTableCodec: Codec<FlagState> = {
  encode: (s) =>
    toBinary(FlaggerTableValueSchema, create(FlaggerTableValueSchema, {
      flagged: s.flagged,
      reason: s.reason ? reasonToPb[s.reason] : FlagReasonPb.UNSPECIFIED,
      changedTime: optionalTimestamp(s.changedTimeMs),
      lastEventId: s.lastEventId,
    })),
  decode: (bytes) => {
    const m = fromBinary(FlaggerTableValueSchema, bytes);
    return {
      flagged: m.flagged,
      reason: m.reason === FlagReasonPb.UNSPECIFIED ? null : reasonFromPb(m.reason),
      changedTimeMs: optionalMs(m.changedTime),
      lastEventId: m.lastEventId,
    };
  },
};

/** An applied event id as the `<group>-applied` changelog carries it. */
export interface AppliedEventValue {
  walletId: string;
  eventId: string;
  fingerprint: string;
  outcome: string;
}

export const appliedEventCodec: Codec<AppliedEventValue> = {
  encode: (a) => toBinary(AppliedEventSchema, create(AppliedEventSchema, a)),
  decode: (bytes) => {
    const m = fromBinary(AppliedEventSchema, bytes);
    return { walletId: m.walletId, eventId: m.eventId, fingerprint: m.fingerprint, outcome: m.outcome };
  },
};

/** The `<group>-applied` key: unambiguous, since ids cannot hold every character. */
export const appliedEventKey = (walletId: string, eventId: string) => JSON.stringify([walletId, eventId]);

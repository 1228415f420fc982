import type { Timestamp } from "@bufbuild/protobuf/wkt";

/**
 * What every codec shares: the two-method interface (Goka's codec), the error a
 * decoder throws, and the checks a decoder makes. Decoding is also validation: a
 * record that decodes is one an actor can be given; anything else throws a
 * DecodeError naming the rule, and the runtime dead-letters the record.
 */

export interface Codec<T> {
  encode(value: T): Uint8Array;
  /** Throws DecodeError for bytes that are not a valid value. */
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
/**
 * Ids an actor derives from another event's id, such as "threshold:<deposit id>": the
 * id and a prefix, so longer than any id a client may send.
 */
export const DERIVED_EVENT_ID_LENGTH_MAX = 2 * EVENT_ID_LENGTH_MAX;
// Event times outside years 1970 to 9999 are mistakes, and would not fit RFC 3339.
const EVENT_TIME_MS_MAX = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

/** Milliseconds of a protobuf Timestamp; throws DecodeError when absent or out of range. */
export function toMs(timestamp: Timestamp | undefined, field: string): number {
  if (!timestamp) throw new DecodeError(`${field}_is_required`, `${field} is required`);
  // Milliseconds are the resolution of every time rule; finer digits are dropped.
  const ms = Number(timestamp.seconds) * 1000 + Math.floor(timestamp.nanos / 1_000_000);
  if (!Number.isSafeInteger(ms) || ms < 0 || ms > EVENT_TIME_MS_MAX) {
    throw new DecodeError(`${field}_out_of_range`, `${field} must lie in years 1970 to 9999`);
  }
  return ms;
}

// Control characters (C0, DEL, C1) in ids are always mistakes, and would be
// ambiguous in logs and in the runtime's composite keys.
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * Checks an id (wallet, deposit or event id): 1 to `max` characters (UTF-16 code
 * units, as JavaScript counts them), well-formed Unicode, no control characters. Returns
 * the code of the broken rule, or undefined. Shared by the API and the decoders, so an
 * id the API accepts is one the processors accept.
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

/** The id if it passes idError, else a DecodeError. */
export function checkId(value: string, field: string, max: number): string {
  const error = idError(value, field, max);
  if (error) throw new DecodeError(error.code, error.message);
  return value;
}

/** Runs a protobuf decode, turning the library's errors into DecodeError("undecodable"). */
export function decoding<T>(decode: () => T): T {
  try {
    return decode();
  } catch (error) {
    if (error instanceof DecodeError) throw error;
    throw new DecodeError("undecodable", `not a valid protobuf message: ${(error as Error).message}`);
  }
}

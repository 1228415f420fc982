/**
 * Money at the edge. Amounts are decimals with at most two fraction digits, carried
 * everywhere else as bigint minor units (cents). No float ever holds money: a JSON
 * number is turned back into its shortest decimal text, which is what the client
 * wrote for every amount this service can accept, and parsed from there.
 */

export const MINOR_PER_MAJOR = 100n;
export const FRACTION_DIGITS_MAX = 2;

/** Stable codes for amounts the service refuses, named after the rule they break. */
export type AmountError =
  | "amount_is_required"
  | "amount_must_be_number_or_string"
  | "amount_must_be_decimal"
  | "amount_must_be_finite"
  | "amount_must_be_positive"
  | "amount_has_too_many_decimals"
  | "amount_exceeds_max";

export type AmountResult = { ok: true; minor: bigint } | { ok: false; code: AmountError; message: string };

// Plain decimal notation only: no exponent, no sign other than a leading minus (which
// is reported as "must be positive" rather than "not a decimal"), no spaces.
const DECIMAL = /^(-?)(\d+)(?:\.(\d+))?$/;

// JSON number text in exponent form: 2.05e1, 20499999999999999e-15, 1E+2.
const EXPONENT = /^(-?)(\d+)(?:\.(\d+))?[eE]([+-]?\d+)$/;
/** Decimal places an exponent may move the point past, beyond any amount's digits. */
const EXPONENT_SHIFT_MAX = 64;

/**
 * The exact plain decimal that JSON number text stands for, or undefined when it is
 * not a number's text. Exponent forms are shifted digit by digit, never through a
 * float: 20499999999999999e-15 is "20.499999999999999" (refused: 15 decimals), not
 * 20.5. A shift beyond any amount's size gives a value judged the same way (too many
 * decimals, or too large) without building a string of its length.
 */
export function exactDecimal(text: string): string | undefined {
  if (DECIMAL.test(text)) return text;
  const match = EXPONENT.exec(text);
  if (!match) return undefined;
  const [, sign = "", integer = "", fraction = "", exponentText = ""] = match;
  const all = integer + fraction;
  const digits = all.replace(/^0+/, "");
  if (digits === "") return `${sign}0`;
  // The point sits after `point` of `digits`: after the integer part, moved by the
  // exponent, less the leading zeros dropped.
  const point = integer.length + Number(exponentText) - (all.length - digits.length);
  if (!Number.isFinite(point) || point > EXPONENT_SHIFT_MAX) return `${sign}1${"0".repeat(EXPONENT_SHIFT_MAX)}`;
  if (point < -EXPONENT_SHIFT_MAX) return `${sign}0.${"0".repeat(EXPONENT_SHIFT_MAX)}1`;
  if (point <= 0) return `${sign}0.${"0".repeat(-point)}${digits}`;
  if (point >= digits.length) return `${sign}${digits}${"0".repeat(point - digits.length)}`;
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
}
// More integer digits than this cannot be under any sane maximum and would make the
// BigInt below do needless work on hostile input.
const INTEGER_DIGITS_MAX = 18;

function fail(code: AmountError, message: string): AmountResult {
  return { ok: false, code, message };
}

/**
 * Parses a decimal amount ("2000", "20.5", 2000, 20.5) into minor units.
 * `maxMinor` is the inclusive upper bound. Never throws.
 *
 * `sourceText` is the JSON text a number was parsed from, when known: a float holds
 * 20.499999999999999 as 20.5, so the digits the client wrote are judged, not the float.
 */
export function parseAmount(input: unknown, maxMinor: bigint, sourceText?: string): AmountResult {
  if (input === undefined || input === null) return fail("amount_is_required", "amount is required");
  let text: string;
  if (typeof input === "number" && sourceText !== undefined && DECIMAL.test(sourceText)) {
    text = sourceText;
  } else if (typeof input === "number") {
    if (!Number.isFinite(input)) return fail("amount_must_be_finite", "amount must be a finite number");
    if (input <= 0) return fail("amount_must_be_positive", "amount must be greater than zero");
    text = String(input);
    // String() switches to exponent notation below 1e-6 and from 1e21 on; both are
    // out of range for money with two decimals, and say which way.
    if (text.includes("e")) {
      return input < 1
        ? fail("amount_has_too_many_decimals", `amount may have at most ${FRACTION_DIGITS_MAX} decimals`)
        : fail("amount_exceeds_max", `amount may be at most ${formatMinor(maxMinor)}`);
    }
  } else if (typeof input === "string") {
    text = input;
  } else {
    return fail("amount_must_be_number_or_string", "amount must be a JSON number or a decimal string");
  }
  const match = DECIMAL.exec(text);
  if (!match) return fail("amount_must_be_decimal", `amount must be a decimal such as "2000" or "20.50", got ${JSON.stringify(text.slice(0, 40))}`);
  const [, sign, integer = "", fraction = ""] = match;
  if (fraction.length > FRACTION_DIGITS_MAX) {
    return fail("amount_has_too_many_decimals", `amount may have at most ${FRACTION_DIGITS_MAX} decimals`);
  }
  if (integer.replace(/^0+/, "").length > INTEGER_DIGITS_MAX) {
    return fail("amount_exceeds_max", `amount may be at most ${formatMinor(maxMinor)}`);
  }
  const minor = BigInt(integer) * MINOR_PER_MAJOR + BigInt(fraction.padEnd(FRACTION_DIGITS_MAX, "0"));
  if (sign === "-" || minor === 0n) return fail("amount_must_be_positive", "amount must be greater than zero");
  if (minor > maxMinor) return fail("amount_exceeds_max", `amount may be at most ${formatMinor(maxMinor)}`);
  return { ok: true, minor };
}

/**
 * Renders minor units as the shortest exact decimal: 30n is "0.3", 200000n is "2000",
 * 2050n is "20.5". The result is valid JSON number text.
 */
export function formatMinor(minor: bigint): string {
  const negative = minor < 0n;
  const abs = negative ? -minor : minor;
  const integer = abs / MINOR_PER_MAJOR;
  const fraction = (abs % MINOR_PER_MAJOR).toString().padStart(FRACTION_DIGITS_MAX, "0").replace(/0+$/, "");
  return `${negative ? "-" : ""}${integer}${fraction ? `.${fraction}` : ""}`;
}

/**
 * Parses a credit limit: like an amount, but 0 (no credit) is allowed. Codes are the
 * amount's, named for the field (credit_limit_has_too_many_decimals, ...); an initial
 * amount is parsed the same way under its own name.
 */
export function parseCreditLimit(value: unknown, maxMinor: bigint, field = "credit_limit"): AmountResult | { ok: false; code: string; message: string } {
  if (value === 0 || (typeof value === "string" && /^0+(\.0{1,2})?$/.test(value))) return { ok: true, minor: 0n };
  const parsed = parseAmount(value, maxMinor);
  if (parsed.ok) return parsed;
  const code = parsed.code.replace(/^amount/, field);
  const message = code === `${field}_must_be_positive` ? `${field} must be 0 or more` : parsed.message.replace(/^amount/, field);
  return { ok: false, code, message };
}

/**
 * Parses a configured amount (an env var), throwing on anything that is not a
 * positive decimal: configuration errors stop the process at start-up.
 */
export function parseConfiguredAmount(name: string, text: string): bigint {
  const result = parseAmount(text, BigInt(Number.MAX_SAFE_INTEGER) ** 2n);
  if (!result.ok) throw new Error(`${name}: ${result.message}`);
  return result.minor;
}

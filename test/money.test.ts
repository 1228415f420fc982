import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { exactDecimal, formatMinor, parseAmount } from "../src/money.js";

const MAX = 100_000_000_000n; // 1,000,000,000.00

describe("parseAmount", () => {
  test.each([
    ["2000", 200000n],
    [2000, 200000n],
    ["20.5", 2050n],
    [20.5, 2050n],
    ["20.50", 2050n],
    [0.1, 10n],
    ["0.01", 1n],
    ["1000000000", MAX],
  ] as const)("accepts %p", (input, minor) => {
    expect(parseAmount(input, MAX)).toEqual({ ok: true, minor });
  });

  test.each([
    [undefined, "amount_is_required"],
    [null, "amount_is_required"],
    [0, "amount_must_be_positive"],
    ["0.00", "amount_must_be_positive"],
    [-5, "amount_must_be_positive"],
    ["-5", "amount_must_be_positive"],
    ["1.001", "amount_has_too_many_decimals"],
    [1.001, "amount_has_too_many_decimals"],
    [1e-7, "amount_has_too_many_decimals"],
    [0.1 + 0.2, "amount_has_too_many_decimals"],
    [Number.NaN, "amount_must_be_finite"],
    [Number.POSITIVE_INFINITY, "amount_must_be_finite"],
    ["NaN", "amount_must_be_decimal"],
    ["Infinity", "amount_must_be_decimal"],
    ["1e3", "amount_must_be_decimal"],
    [" 5", "amount_must_be_decimal"],
    ["", "amount_must_be_decimal"],
    ["5.", "amount_must_be_decimal"],
    [[5], "amount_must_be_number_or_string"],
    [{ v: 5 }, "amount_must_be_number_or_string"],
    [true, "amount_must_be_number_or_string"],
    ["1000000000.01", "amount_exceeds_max"],
    [1e21, "amount_exceeds_max"],
    ["9".repeat(40), "amount_exceeds_max"],
  ] as const)("refuses %p with %s", (input, code) => {
    const result = parseAmount(input, MAX);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.code).toBe(code);
  });
});

describe("formatMinor", () => {
  test("renders the shortest exact decimal", () => {
    expect(formatMinor(30n)).toBe("0.3");
    expect(formatMinor(10n + 20n)).toBe("0.3");
    expect(formatMinor(200000n)).toBe("2000");
    expect(formatMinor(2050n)).toBe("20.5");
    expect(formatMinor(1n)).toBe("0.01");
    expect(formatMinor(0n)).toBe("0");
    expect(formatMinor(-205n)).toBe("-2.05");
  });

  test("round trip: format then parse gives the same minor units, as a string and as a JSON number", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 1n, max: MAX }), (minor) => {
        const text = formatMinor(minor);
        expect(parseAmount(text, MAX)).toEqual({ ok: true, minor });
        // A JSON number travels as the same text; parsing it must not lose a cent.
        expect(parseAmount(JSON.parse(text), MAX)).toEqual({ ok: true, minor });
      }),
      { numRuns: 2_000 },
    );
  });

  test("round trip: parse then format normalises, never changes the value", () => {
    const decimal = fc
      .tuple(fc.bigInt({ min: 0n, max: 999_999_999n }), fc.constantFrom("", ".0", ".00", ".5", ".50", ".05", ".99", ".1"))
      .map(([integer, fraction]) => `${integer}${fraction}`);
    fc.assert(
      fc.property(decimal, (text) => {
        const parsed = parseAmount(text, MAX);
        if (!parsed.ok) {
          expect(parsed.code).toBe("amount_must_be_positive");
          expect(Number(text)).toBe(0);
          return;
        }
        expect(Number(formatMinor(parsed.minor))).toBe(Number(text));
        expect(parseAmount(formatMinor(parsed.minor), MAX)).toEqual(parsed);
      }),
      { numRuns: 2_000 },
    );
  });
});

describe("exactDecimal", () => {
  test.each([
    ["20499999999999999e-15", "20.499999999999999"],
    ["2.05e1", "20.5"],
    ["1E+2", "100"],
    ["00.10e1", "1.0"],
    ["-3e2", "-300"],
    ["0e5", "0"],
    ["20.5", "20.5"],
    ["abc", undefined],
    ["1e", undefined],
  ])("%s is %p", (text, decimal) => {
    expect(exactDecimal(text)).toBe(decimal);
  });

  test("a shift past any amount's size is judged, not built: too large or too many decimals", () => {
    expect(parseAmount(exactDecimal("1e99999999999999999999"), MAX)).toMatchObject({ ok: false, code: "amount_exceeds_max" });
    expect(parseAmount(exactDecimal("1e-99999999999999999999"), MAX)).toMatchObject({ ok: false, code: "amount_has_too_many_decimals" });
  });

  // Within the shift exactDecimal builds (64 places either way).
  test("equals mantissa x 10^exponent, computed in integers", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 10n ** 20n }), fc.nat({ max: 12 }), fc.integer({ min: -40, max: 40 }), (whole, fractionDigits, exponent) => {
        const digits = whole.toString().padStart(fractionDigits + 1, "0");
        const mantissa = fractionDigits === 0 ? digits : `${digits.slice(0, -fractionDigits)}.${digits.slice(-fractionDigits)}`;
        const decimal = exactDecimal(`${mantissa}e${exponent}`)!;
        // decimal = whole * 10^(exponent - fractionDigits): compare both scaled to integers.
        const [integer, fraction = ""] = decimal.split(".");
        const scaled = BigInt(integer! + fraction);
        const shift = exponent - fractionDigits + fraction.length;
        expect(shift >= 0 ? scaled === whole * 10n ** BigInt(shift) : scaled * 10n ** BigInt(-shift) === whole).toBe(true);
      }),
      { numRuns: 2_000 },
    );
  });
});

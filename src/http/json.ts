/**
 * JSON text with exact numbers. Money must be a JSON number (the seed's clients read
 * `"balance": 2000`) but must never pass through a float on the way out, so amounts
 * are wrapped in RawNumber and written as their decimal text.
 */
export class RawNumber {
  constructor(readonly text: string) {
    if (!/^-?\d+(\.\d+)?$/.test(text)) throw new Error(`not a JSON number: ${text}`);
  }
}

/** JSON.stringify, but RawNumber is written as its text and undefined fields are left out. */
export function stringify(value: unknown): string {
  if (value instanceof RawNumber) return value.text;
  if (value === null || typeof value !== "object") return JSON.stringify(value ?? null);
  // Plain loops: this runs for every answer, and Object.entries/filter/map cost more
  // than the rest of a GET /check.
  if (Array.isArray(value)) {
    let out = "[";
    for (let i = 0; i < value.length; i++) out += (i === 0 ? "" : ",") + stringify(value[i]);
    return `${out}]`;
  }
  let out = "{";
  for (const key in value) {
    const field = (value as Record<string, unknown>)[key];
    if (field === undefined) continue;
    out += `${out.length === 1 ? "" : ","}${JSON.stringify(key)}:${stringify(field)}`;
  }
  return `${out}}`;
}

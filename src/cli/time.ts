// RFC 3339 date-time: full date, "T" (or "t"/space is not accepted here), time with
// optional fraction, and a mandatory offset. Date.parse alone accepts far more.
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/** Milliseconds since the epoch, or undefined if `text` is not a valid RFC 3339 time. */
export function parseRfc3339(text: string): number | undefined {
  const match = RFC3339.exec(text);
  if (!match) return undefined;
  const [, year, month, day, hour, minute, second] = match.map(Number) as number[];
  if (month! < 1 || month! > 12 || day! < 1 || day! > 31 || hour! > 23 || minute! > 59 || second! > 60) return undefined;
  const ms = Date.parse(text.replace(/z$/, "Z").replace(/t/, "T"));
  if (!Number.isFinite(ms) || ms < 0) return undefined;
  // Date.parse rolls 2026-02-30 over to March; RFC 3339 calls it invalid.
  const dayOfMonth = new Date(Date.UTC(year!, month! - 1, day!)).getUTCDate();
  return dayOfMonth === day ? ms : undefined;
}

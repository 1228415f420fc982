// HTTP against a running API with exact money, for the suites and scripts that keep
// books of their own (the transfer storm, `bun run torture`): amounts travel as
// decimal text and are summed as integer cents, never through a float.

/** Cents of a decimal text with at most 2 fraction digits ("-12.5" -> -1250n). */
export function cents(text: string): bigint {
  const m = /^(-?)(\d+)(?:\.(\d{1,2}))?$/.exec(text);
  if (!m) throw new Error(`not a 2-decimal amount: ${JSON.stringify(text)}`);
  const value = BigInt(m[2]!) * 100n + BigInt((m[3] ?? "").padEnd(2, "0"));
  return m[1] === "-" ? -value : value;
}

/** "1234" cents -> "12.34", as the API takes it. */
export function decimal(c: bigint): string {
  const sign = c < 0n ? "-" : "";
  const abs = c < 0n ? -c : c;
  return `${sign}${abs / 100n}.${(abs % 100n).toString().padStart(2, "0")}`;
}

const MONEY_FIELDS = new Set(["balance", "available", "held", "credit_limit", "amount", "balance_after"]);

/**
 * JSON with the money fields kept as the exact number text the API sent (JSON.parse
 * source text access), so no amount passes through a float.
 */
export function parseExact(text: string): any {
  return JSON.parse(text, (key: string, value: unknown, context?: { source?: string }) => {
    if (typeof value !== "number" || !MONEY_FIELDS.has(key)) return value;
    if (context?.source === undefined) throw new Error("this runtime lacks JSON.parse source text access");
    return context.source;
  });
}

export interface Reply {
  status: number;
  headers: Headers;
  text: string;
  json: any;
}

/**
 * A JSON request, its answer parsed with exact money (`json` is undefined when the
 * body is not JSON). With `timeoutMs`, a request not answered in time is aborted (it
 * throws, as a connection error does).
 */
export async function call(base: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}, timeoutMs?: number): Promise<Reply> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { "content-type": "application/json", ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: timeoutMs === undefined ? undefined : AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  let json: any;
  try {
    json = text ? parseExact(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** Runs `work` over `items`, at most `limit` at a time. */
export async function pool<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

/** Every entry of a wallet's history, walking its pages (newest first). */
export async function historyOf(base: string, walletId: string): Promise<any[]> {
  const entries: any[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 1_000; page++) {
    const reply = await call(base, "GET", `/wallets/${encodeURIComponent(walletId)}/history?limit=500${cursor === null ? "" : `&cursor=${encodeURIComponent(cursor)}`}`, undefined, {}, 30_000);
    if (reply.status !== 200) throw new Error(`history of ${walletId}: ${reply.status} ${reply.text}`);
    entries.push(...reply.json.entries);
    cursor = reply.json.next_cursor;
    if (cursor === null) return entries;
  }
  throw new Error(`history of ${walletId} did not end`);
}

// A small HTTP load generator in Bun, run as its own process (pinned to the other
// core), for what wrk is not used for. Prints one line, BENCH_JSON {...}.
//
// closed: the fallback when wrk is missing. `connections` loops, each sending its next
//   request when the last is answered, for `seconds`. Same output as bench/wrk/*.lua.
//   bun bench/load.ts closed --url U --kind post|get --connections 64 --seconds 10 --wallets 1000 --prefix P
// open: freshness at a fixed offered rate. Each deposit is posted on schedule, whatever
//   the answers before it; after its 202, GET /check/<wallet>?after=<position> is sent
//   at once, and the time from the 202 to an answer with "included": true is recorded.
//   bun bench/load.ts open --url U --rate 1000 --seconds 10 --wallets 1000 --prefix P
import { parseArgs } from "node:util";
import { percentile } from "./stats.js";

/** How often the open loop checks its schedule; at 5,000/s that sends about 5 at a time. */
const scheduleTickMs = 1;

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: "string" },
    kind: { type: "string" },
    connections: { type: "string" },
    seconds: { type: "string" },
    rate: { type: "string" },
    wallets: { type: "string" },
    prefix: { type: "string" },
  },
});
const base = values.url ?? "";
const seconds = Number(values.seconds);
const wallets = Number(values.wallets);
const prefix = values.prefix ?? "load";
if (!base || !(seconds > 0 && wallets > 0)) throw new Error("usage: load.ts closed|open --url U --seconds S --wallets W ... (see the comment at the top)");

function postDeposit(n: number): Promise<Response> {
  return fetch(`${base}/deposit`, {
    method: "POST",
    headers: { "content-type": "application/json", "idempotency-key": `${prefix}-${n}` },
    body: `{"wallet_id":"w${n % wallets}","amount":"1.23"}`,
  });
}

async function closed(kind: "post" | "get", connections: number): Promise<void> {
  const latenciesUs: number[] = [];
  let unexpected = 0;
  let failed = 0;
  let sent = 0;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  await Promise.all(Array.from({ length: connections }, async () => {
    while (performance.now() < deadline) {
      const n = sent++;
      const t = performance.now();
      try {
        const res = kind === "post" ? await postDeposit(n) : await fetch(`${base}/check/w${n % wallets}`);
        await res.arrayBuffer();
        if (res.status !== (kind === "post" ? 202 : 200)) unexpected++;
        latenciesUs.push((performance.now() - t) * 1000);
      } catch {
        failed++;
      }
    }
  }));
  const durationUs = (performance.now() - started) * 1000;
  const p = (q: number) => (latenciesUs.length > 0 ? percentile(latenciesUs, q) : 0);
  console.log(`BENCH_JSON ${JSON.stringify({ requests: latenciesUs.length, duration_us: Math.round(durationUs), unexpected_status: unexpected, errors: { request: failed }, p50_us: p(0.5), p99_us: p(0.99) })}`);
}

interface Fresh {
  ackedAt: number;
  /** From the 202 to the answer of GET /check?after=; a lower bound when not included. */
  ms: number;
  included: boolean;
}

/**
 * Posts deposit n, then at once reads it back with GET /check?after=<its position>.
 * Undefined when the API shed it (503 overloaded, past WRITES_IN_FLIGHT_MAX).
 */
async function depositThenCheck(n: number): Promise<Fresh | undefined> {
  const res = await postDeposit(n);
  if (res.status !== 202) {
    const text = await res.text();
    if (res.status === 503 && res.headers.has("retry-after") && text.includes('"overloaded"')) return undefined;
    throw new Error(`POST /deposit: ${res.status} ${text}`);
  }
  const { position } = (await res.json()) as { position: string };
  const ackedAt = performance.now();
  const check = await fetch(`${base}/check/w${n % wallets}?after=${position}`);
  if (check.status !== 200) throw new Error(`GET /check?after=${position}: ${check.status} ${await check.text()}`);
  const body = (await check.json()) as { after?: { included: boolean } };
  return { ackedAt, ms: performance.now() - ackedAt, included: body.after?.included === true };
}

async function open(ratePerSecond: number): Promise<void> {
  const total = Math.round(ratePerSecond * seconds);
  const pending: Promise<Fresh | undefined>[] = [];
  const started = performance.now();
  for (let sent = 0; sent < total; await Bun.sleep(scheduleTickMs)) {
    const due = Math.min(total, Math.floor(((performance.now() - started) * ratePerSecond) / 1000) + 1);
    for (; sent < due; sent++) pending.push(depositThenCheck(sent));
  }
  // Any failed request fails the run: Promise.all rejects and the process exits non-zero.
  const answered = await Promise.all(pending);
  const results = answered.filter((r): r is Fresh => r !== undefined);
  // A deposit not seen within the wait counts with the time it waited: the
  // percentiles stay lower bounds rather than leaving it out.
  const ms = results.map((r) => r.ms);
  const lastAck = results.reduce((latest, r) => Math.max(latest, r.ackedAt), started);
  console.log(`BENCH_JSON ${JSON.stringify({
    offeredPerSecond: ratePerSecond,
    achievedPerSecond: (results.length / (lastAck - started)) * 1000,
    deposits: results.length,
    shed: total - results.length,
    p50Ms: percentile(ms, 0.5),
    p99Ms: percentile(ms, 0.99),
    maxMs: ms.reduce((a, b) => Math.max(a, b), 0),
    notIncluded: results.filter((r) => !r.included).length,
  })}`);
}

if (positionals[0] === "closed") await closed(values.kind === "get" ? "get" : "post", Number(values.connections));
else if (positionals[0] === "open") await open(Number(values.rate));
else throw new Error("usage: load.ts closed|open --url U ... (see the comment at the top)");

// The open loop of the overload suite, run as its own process (pinned to the other
// core): POST /deposit on a fixed schedule, whatever the answers, over many keep-alive
// connections. Prints one line, BENCH_JSON {...}.
//
//   bun bench/overload-load.ts --url U --rate 10000 --seconds 60 --wallets 1000 --connections 8192 --prefix P
//
// Request n is due at n/rate seconds after the start and goes out on a connection with
// nothing outstanding; when every connection has a request outstanding it is skipped
// (the client's cap, counted, never sent later: the schedule does not wait). Latency
// is from the time the request was due, so a slow answer is never hidden by a late
// send. One request at a time per connection: Bun's server (1.4.5) does not answer
// pipelined requests whose handler awaits, so pipelining would measure that instead.
// Raw sockets (Bun.connect) rather than fetch: against a bare Bun.serve it kept a
// schedule of 30,000/s with send lag p99 2.4 ms on a third of its core, several times
// the rates the product serves (send lag and its CPU share are in the output).
//
// Deposit n goes to wallet <prefix>-w<n mod wallets> with a unique Idempotency-Key
// and an amount of 1.00 to 5.99; the output has, per wallet, the deposits answered
// 202 and their sum in cents, and those whose outcome is unknown (no answer, a closed
// connection, a status other than 202 or 503 overloaded), so the caller can check the
// ledger against them.
import type { Socket } from "bun";
import { parseArgs } from "node:util";
import { percentile } from "./stats.js";

/** How often the schedule is checked; at 10,000/s that sends about 10 at a time. */
const scheduleTickMs = 1;
/** Connections opened at once before the run: under the listen backlog. */
const connectBatch = 256;
/** After the last send, how long outstanding requests may take to answer. */
const answerWaitMs = 30_000;
/** The timeline's resolution. */
const bucketSeconds = 10;

const names = ["url", "rate", "seconds", "wallets", "connections", "prefix"] as const;
const { values } = parseArgs({ options: Object.fromEntries(names.map((n) => [n, { type: "string" as const }])) as Record<(typeof names)[number], { type: "string" }> });
const url = new URL(values.url ?? "");
const rate = Number(values.rate);
const seconds = Number(values.seconds);
const wallets = Number(values.wallets);
const connectionCount = Number(values.connections);
const prefix = values.prefix ?? "overload";
if (!(rate > 0 && seconds > 0 && wallets > 0 && connectionCount > 0)) throw new Error("usage: overload-load.ts --url U --rate R --seconds S --wallets W --connections C --prefix P");

interface Outstanding {
  n: number;
  dueMs: number;
}

interface Connection {
  index: number;
  socket: Socket<Connection> | undefined;
  /** Answer bytes not yet parsed (latin1: one char per byte, so lengths are byte counts). */
  received: string;
  outstanding: Outstanding | undefined;
  /** Request bytes the socket did not take yet. */
  unsent: string;
  /** Open with nothing outstanding, and in `idle`. */
  idle: boolean;
}

const walletPrefix = `${prefix}-w`;
const walletOf = (n: number) => n % wallets;
const centsOf = (n: number) => 100 + (n % 500);

const accepted = new Array<number>(wallets).fill(0);
const acceptedCents = new Array<number>(wallets).fill(0);
const unknown = new Array<number>(wallets).fill(0);
const unknownCents = new Array<number>(wallets).fill(0);
const servedMs: number[] = [];
const shedMs: number[] = [];
let shedWithRetryAfter = 0;
/** Answers other than 202 and 503 overloaded, by "<status> <code>". */
const other: Record<string, number> = {};
/** Connections lost with a request outstanding, by the error (or "closed"). */
const lost: Record<string, number> = {};
let reconnects = 0;
let lastAnswerMs = 0;
const buckets: { sent: number; skipped: number; served: number; shed: number; servedMs: number[] }[] = [];
const bucketOf = (dueMs: number) => (buckets[Math.floor((dueMs - startMs) / 1000 / bucketSeconds)] ??= { sent: 0, skipped: 0, served: 0, shed: 0, servedMs: [] });

const connections: Connection[] = Array.from({ length: connectionCount }, (_, index) => ({ index, socket: undefined, received: "", outstanding: undefined, unsent: "", idle: false }));

/**
 * Connections open with nothing outstanding, oldest first: requests rotate over all of
 * them, so none sits idle long enough for the server's idle timeout to close it. An
 * entry whose connection closed or was taken since stays until it is reached, and is
 * skipped then (its `idle` is false).
 */
const idle = {
  queue: [] as Connection[],
  head: 0,
  push(c: Connection): void {
    if (c.idle) return;
    c.idle = true;
    this.queue.push(c);
  },
  take(): Connection | undefined {
    while (this.head < this.queue.length) {
      const c = this.queue[this.head++]!;
      if (c.idle && c.socket) {
        c.idle = false;
        this.compact();
        return c;
      }
    }
    return undefined;
  },
  /** Drops the entries already taken, now and then. */
  compact(): void {
    if (this.head < 65_536) return;
    this.queue = this.queue.slice(this.head);
    this.head = 0;
  },
};
let finishing = false;
let startMs = 0;

function count(into: Record<string, number>, key: string): void {
  into[key] = (into[key] ?? 0) + 1;
}

function unknownDeposit(n: number): void {
  unknown[walletOf(n)]!++;
  unknownCents[walletOf(n)]! += centsOf(n);
}

/** The outcome of the request outstanding on `c` is unknown: it may or may not have been stored. */
function unknownOutcome(c: Connection, why: string): void {
  if (!c.outstanding) return;
  unknownDeposit(c.outstanding.n);
  count(lost, why);
  c.outstanding = undefined;
}

function answered(c: Connection, head: string, body: string): void {
  const now = performance.now();
  const sent = c.outstanding;
  // Past the wait at the end, its request was counted unanswered.
  if (!sent && finishing) return;
  if (!sent) throw new Error(`an answer with no request outstanding on connection ${c.index}: ${head.slice(0, 200)}`);
  c.outstanding = undefined;
  lastAnswerMs = now;
  const status = Number(head.slice(9, 12));
  const ms = now - sent.dueMs;
  const bucket = bucketOf(sent.dueMs);
  const code = status === 202 ? "" : (/"code":"(\w+)"/.exec(body)?.[1] ?? "no code");
  if (status === 202) {
    const wallet = walletOf(sent.n);
    accepted[wallet]!++;
    acceptedCents[wallet]! += centsOf(sent.n);
    servedMs.push(ms);
    bucket.served++;
    bucket.servedMs.push(ms);
  } else if (status === 503 && code === "overloaded") {
    shedMs.push(ms);
    bucket.shed++;
    if (/\r\nretry-after:/i.test(head)) shedWithRetryAfter++;
  } else {
    count(other, `${status} ${code}`);
    unknownDeposit(sent.n);
  }
  if (/\r\nconnection: close/i.test(head)) c.socket?.end();
  else if (!finishing) idle.push(c);
}

/** Parses every complete answer in `c.received` (Content-Length framing; Bun's server sends no other for these). */
function parse(c: Connection): void {
  for (;;) {
    const headEnd = c.received.indexOf("\r\n\r\n");
    if (headEnd < 0) return;
    const head = c.received.slice(0, headEnd);
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1];
    if (length === undefined) throw new Error(`an answer without Content-Length: ${head.slice(0, 200)}`);
    const end = headEnd + 4 + Number(length);
    if (c.received.length < end) return;
    const body = c.received.slice(headEnd + 4, end);
    c.received = c.received.slice(end);
    answered(c, head, body);
  }
}

function flush(c: Connection): void {
  if (!c.unsent || !c.socket) return;
  const written = c.socket.write(c.unsent);
  c.unsent = c.unsent.slice(Math.max(0, written));
}

async function connect(c: Connection): Promise<void> {
  c.received = "";
  c.unsent = "";
  await Bun.connect<Connection>({
    hostname: url.hostname,
    port: Number(url.port),
    data: c,
    socket: {
      open(socket) {
        socket.data.socket = socket;
        if (!finishing) idle.push(socket.data);
      },
      data(socket, chunk) {
        socket.data.received += chunk.toString("latin1");
        parse(socket.data);
      },
      drain(socket) {
        flush(socket.data);
      },
      error(socket, error) {
        unknownOutcome(socket.data, error.message);
      },
      close(socket) {
        const conn = socket.data;
        conn.socket = undefined;
        conn.idle = false;
        unknownOutcome(conn, "closed");
        // A keep-alive connection the server closed (its idle timeout, or Connection:
        // close): open another in its place.
        if (!finishing) {
          reconnects++;
          connect(conn).catch((error: Error) => count(lost, `reconnect: ${error.message}`));
        }
      },
    },
  });
}

function request(n: number): string {
  const body = `{"wallet_id":"${walletPrefix}${walletOf(n)}","amount":"${(centsOf(n) / 100).toFixed(2)}"}`;
  return `POST /deposit HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/json\r\nIdempotency-Key: ${prefix}-${n}\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
}

const sendLagMs: number[] = [];
let skipped = 0;

function send(n: number, dueMs: number, now: number): void {
  const c = idle.take();
  const bucket = bucketOf(dueMs);
  if (!c) {
    skipped++;
    bucket.skipped++;
    return;
  }
  c.outstanding = { n, dueMs };
  c.unsent = request(n);
  flush(c);
  sendLagMs.push(now - dueMs);
  bucket.sent++;
}

const connectStarted = performance.now();
for (let from = 0; from < connectionCount; from += connectBatch) await Promise.all(connections.slice(from, from + connectBatch).map(connect));
const connectMs = performance.now() - connectStarted;

const total = Math.round(rate * seconds);
const cpuBefore = process.cpuUsage();
startMs = performance.now();
const dueOf = (n: number) => startMs + (n * 1000) / rate;
for (let n = 0; n < total; await Bun.sleep(scheduleTickMs)) {
  const now = performance.now();
  const due = Math.min(total, Math.floor(((now - startMs) * rate) / 1000) + 1);
  for (; n < due; n++) send(n, dueOf(n), now);
}
const scheduleMs = performance.now() - startMs;
const cpu = process.cpuUsage(cpuBefore);
const cpuShare = (cpu.user + cpu.system) / 1000 / scheduleMs;

const waitUntil = performance.now() + answerWaitMs;
while (connections.some((c) => c.outstanding) && performance.now() < waitUntil) await Bun.sleep(10);
finishing = true;
let unanswered = 0;
for (const c of connections) {
  if (c.outstanding) unanswered++;
  unknownOutcome(c, "unanswered");
  c.socket?.end();
}

const summary = (ms: number[]) => (ms.length === 0 ? { p50: 0, p99: 0, max: 0 } : { p50: percentile(ms, 0.5), p99: percentile(ms, 0.99), max: ms.reduce((a, b) => Math.max(a, b), 0) });
const sent = sendLagMs.length;
console.log(`BENCH_JSON ${JSON.stringify({
  offeredPerSecond: rate,
  connections: connectionCount,
  connectMs,
  scheduled: total,
  sent,
  skipped,
  scheduleSeconds: scheduleMs / 1000,
  sentPerSecond: sent / (scheduleMs / 1000),
  sendLagMs: summary(sendLagMs),
  generatorCpuShare: cpuShare,
  served: servedMs.length,
  servedPerSecond: servedMs.length / ((Math.max(lastAnswerMs, startMs + scheduleMs) - startMs) / 1000),
  servedMs: summary(servedMs),
  shed: shedMs.length,
  shedWithRetryAfter,
  shedMs: summary(shedMs),
  other,
  lost,
  unanswered,
  reconnects,
  timeline: buckets.map((b, i) => ({ fromSecond: i * bucketSeconds, sent: b.sent, skipped: b.skipped, served: b.served, shed: b.shed, servedP99Ms: b.servedMs.length > 0 ? percentile(b.servedMs, 0.99) : 0 })),
  perWallet: { accepted, acceptedCents, unknown, unknownCents },
  walletPrefix,
})}`);
process.exit(0);

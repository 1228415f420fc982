// Drives HTTP load at a server from the other core: closed loops (a fixed number of
// connections, each sending its next request when the last is answered) with wrk when
// it is on PATH, else with bench/load.ts; open loops (a fixed offered rate) for
// freshness, always with bench/load.ts; and open loops past capacity for the overload
// suite, with bench/overload-load.ts. Each prints a BENCH_JSON line.
import { join } from "node:path";
import { lastJsonLine, loadCore, runProgram } from "./proc.js";
import { formatNumber } from "./result.js";
import { medianBy } from "./stats.js";

const wrk = Bun.which("wrk");
/** The closed-loop generator, in a word, and in full for the report. */
export const generatorName = wrk ? "wrk" : "bench/load.ts";
export const generator = wrk ? "wrk, one thread, Lua script bench/wrk/load.lua" : "bench/load.ts (Bun fetch; wrk not found on PATH)";

/** wrk's default of 2 s would count a slow answer under heavy load as an error. */
const requestTimeoutSeconds = 10;
/** fetch's default of 256 requests at once would queue an open loop's requests in the client. */
const fetchRequestsMax = 4_096;

export type Kind = "post" | "get";

export interface ClosedLoad {
  kind: Kind;
  connections: number;
  /** Wallets cycled over: w0 to w<wallets-1>. */
  wallets: number;
}

export interface LoadResult {
  requests: number;
  seconds: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
}

/** The BENCH_JSON line of bench/wrk/load.lua and bench/load.ts. */
interface LoadJson {
  requests: number;
  duration_us: number;
  unexpected_status: number;
  errors: Record<string, number>;
  p50_us: number;
  p99_us: number;
}

let runs = 0;
const runTag = Date.now().toString(36);
/** Idempotency-Keys must differ between runs against the same server. */
const nextKeyPrefix = () => `${runTag}-${runs++}`;

function command(base: string, load: ClosedLoad, seconds: number, keyPrefix: string): string[] {
  if (wrk) {
    return [wrk, "-t1", `-c${load.connections}`, `-d${seconds}s`, "--timeout", `${requestTimeoutSeconds}s`, "-s", join(import.meta.dir, "wrk", "load.lua"), base, "--", load.kind, keyPrefix, String(load.wallets)];
  }
  return [process.execPath, join(import.meta.dir, "load.ts"), "closed", "--url", base, "--kind", load.kind, "--connections", String(load.connections), "--seconds", String(seconds), "--wallets", String(load.wallets), "--prefix", keyPrefix];
}

/** One closed-loop run; throws on any socket error or unexpected status. */
async function closedLoop(base: string, load: ClosedLoad, seconds: number): Promise<LoadResult> {
  const stdout = await runProgram("load generator", command(base, load, seconds, nextKeyPrefix()), { cwd: import.meta.dir, env: { BUN_CONFIG_MAX_HTTP_REQUESTS: String(fetchRequestsMax) }, core: loadCore });
  const json = lastJsonLine<LoadJson>(stdout, "BENCH_JSON ");
  const errors = Object.entries(json.errors).filter(([, n]) => n > 0);
  if (json.unexpected_status > 0 || errors.length > 0 || json.requests === 0) {
    throw new Error(`${load.kind} load on ${base}: ${json.requests} answered, ${json.unexpected_status} with an unexpected status, errors ${JSON.stringify(Object.fromEntries(errors))}`);
  }
  const runSeconds = json.duration_us / 1e6;
  return { requests: json.requests, seconds: runSeconds, perSecond: json.requests / runSeconds, p50Ms: json.p50_us / 1000, p99Ms: json.p99_us / 1000 };
}

export interface Repetitions {
  warmupSeconds: number;
  seconds: number;
  count: number;
}

export interface Throughput {
  /** The run with the median rate (its latencies are its own). */
  median: LoadResult;
  runs: LoadResult[];
}

/** A warm-up run, then `count` runs, each after `beforeEach` (e.g. let processors catch up). */
export async function throughput(base: string, load: ClosedLoad, reps: Repetitions, beforeEach: () => Promise<void> = async () => {}): Promise<Throughput> {
  await closedLoop(base, load, reps.warmupSeconds);
  const results: LoadResult[] = [];
  for (let i = 0; i < reps.count; i++) {
    await beforeEach();
    results.push(await closedLoop(base, load, reps.seconds));
  }
  return { median: medianBy(results, (r) => r.perSecond), runs: results };
}

/** A throughput figure's latencies and the spread of its runs, as text. */
export function loadDetails(t: Throughput): string {
  return `p50 ${formatNumber(t.median.p50Ms)} ms, p99 ${formatNumber(t.median.p99Ms)} ms; runs ${t.runs.map((r) => formatNumber(r.perSecond)).join(", ")} req/s`;
}

export interface OpenLoad {
  ratePerSecond: number;
  seconds: number;
  wallets: number;
}

export interface Freshness {
  offeredPerSecond: number;
  /** Deposits acknowledged per second over the run. */
  achievedPerSecond: number;
  deposits: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Deposits GET /check?after= did not see within its wait. */
  notIncluded: number;
  /** Deposits refused with 503 overloaded (WRITES_IN_FLIGHT_MAX): not in the percentiles. */
  shed: number;
}

/** Runs a Bun load generator of bench/ on the load core; its BENCH_JSON line. */
async function generate<T>(name: string, script: string, args: string[]): Promise<T> {
  const stdout = await runProgram(name, [process.execPath, join(import.meta.dir, script), ...args], { cwd: import.meta.dir, env: { BUN_CONFIG_MAX_HTTP_REQUESTS: String(fetchRequestsMax) }, core: loadCore });
  return lastJsonLine<T>(stdout, "BENCH_JSON ");
}

/** An open loop of POST /deposit, each followed by GET /check?after=<its position>. */
export function openLoop(base: string, load: OpenLoad): Promise<Freshness> {
  return generate<Freshness>("open-loop generator", "load.ts", ["open", "--url", base, "--rate", String(load.ratePerSecond), "--seconds", String(load.seconds), "--wallets", String(load.wallets), "--prefix", nextKeyPrefix()]);
}

export interface OverloadLoad extends OpenLoad {
  /** Keep-alive connections, one request outstanding on each at most. */
  connections: number;
}

/** p50, p99 and max of some latencies, in ms (all 0 when there were none). */
export interface Latencies {
  p50: number;
  p99: number;
  max: number;
}

/** What bench/overload-load.ts prints. */
export interface Overload {
  offeredPerSecond: number;
  connections: number;
  connectMs: number;
  /** Requests the schedule called for; each was sent or skipped. */
  scheduled: number;
  sent: number;
  /** Due while every connection had a request outstanding: the client's cap. */
  skipped: number;
  scheduleSeconds: number;
  sentPerSecond: number;
  /** How late after its due time each request went out. */
  sendLagMs: Latencies;
  /** The generator's CPU time over the schedule's wall time. */
  generatorCpuShare: number;
  /** Answered 202. */
  served: number;
  servedPerSecond: number;
  /** From the due time to the answer. */
  servedMs: Latencies;
  /** Answered 503 overloaded. */
  shed: number;
  shedWithRetryAfter: number;
  shedMs: Latencies;
  /** Other answers, by "<status> <code>". */
  other: Record<string, number>;
  /** Connections lost with a request outstanding, by error. */
  lost: Record<string, number>;
  /** Still unanswered when the generator stopped waiting. */
  unanswered: number;
  /** Connections the server closed and the generator opened again. */
  reconnects: number;
  timeline: { fromSecond: number; sent: number; skipped: number; served: number; shed: number; servedP99Ms: number }[];
  /** Per wallet (<walletPrefix>w<i>): deposits answered 202, their sum in cents, and those of unknown outcome. */
  perWallet: { accepted: number[]; acceptedCents: number[]; unknown: number[]; unknownCents: number[] };
  walletPrefix: string;
}

/** An open loop of POST /deposit past capacity: bench/overload-load.ts. */
export function overloadLoop(base: string, load: OverloadLoad): Promise<Overload> {
  return generate<Overload>("overload generator", "overload-load.ts", ["--url", base, "--rate", String(load.ratePerSecond), "--seconds", String(load.seconds), "--wallets", String(load.wallets), "--connections", String(load.connections), "--prefix", nextKeyPrefix()]);
}

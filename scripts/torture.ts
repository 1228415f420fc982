// `bun run torture`: proves that acknowledged operations are never lost or applied
// twice under SIGKILL, on the embedded log and on Kafka, with real processes only.
//
//   bun run torture [--log embedded|kafka|both] [--cycles 50] [--seed S] [--wallets 16]
//                   [--concurrency 32] [--broker-home DIR] [--drain-seconds 120] [--keep]
//
// The cluster, per log:
// - embedded: an `api` process and a `processor` process on one DATA_DIR (the embedded
//   log is one SQLite file that several processes may append to and consume from);
// - kafka: an `api` and two `processor` instances, each on its own DATA_DIR, and the
//   broker.
// A stream of deposits, withdrawals and transfers over a set of wallets (opened with
// money first) runs `--concurrency` requests at a time, each operation under its own
// Idempotency-Key. A client retries the same key with the same body after a 503, a
// connection error or a timeout (some requests get a timeout of a few milliseconds on
// purpose), gives up on some, sometimes sends a request twice at once, and sometimes
// sends it again after it succeeded. Meanwhile, `--cycles` times, at a random moment,
// a process is killed with SIGKILL and started again on the same DATA_DIR: each one
// once first, in a random order, then at random (the broker less often: its restart
// takes seconds). The api's port changes; the clients follow it.
//
// Of the api's cycles, half stop it with SIGTERM instead, and every run ends its load
// with one more: under the load, every request sent to it within its grace gets an
// answer (after the grace, a refused connection, or a reset of a request sent on an
// idle keep-alive connection as it closes, is allowed and counted), and it exits 0
// within SHUTDOWN_TIMEOUT_MS.
//
// Then the stream stops and the api is restarted gracefully (so no write it took can
// land later). Every acknowledged operation must then be decided with no new write (a
// record left behind until its partition's next write shows here); transfers settle or
// are rejected (TRANSFER_TIMEOUT_SECONDS is 10, on Kafka 20). Then every wallet gets one
// more deposit, a barrier: once it is decided, every earlier command of the wallet is,
// so an operation still unknown was never stored. The books are checked against an
// oracle built from the answers alone:
// - an acknowledged operation (any 2xx answer) exists, is decided, and when settled
//   has exactly one entry in its wallet's history (a transfer one on each side, with
//   its counterparty); nothing (acknowledged or not) has more than one;
// - no entry the oracle does not expect (an operation rejected, unknown, or never sent);
// - money is conserved: the balances sum to the openings plus the settled deposits less
//   the settled withdrawals, in integer cents; each wallet's balance is what its own
//   settled operations make it, its history sums to it and numbers its entries 1..n;
// - no `available` below 0, no `held` and no pending transfer at rest; counts agree;
// - a decision answered during the run is the final one; only the rejection reasons the
//   load can cause occur (the fraud threshold is set out of reach);
// - after the drain, the same keys sent again answer the same decisions and change
//   nothing.
// It prints a summary and exits 1 on any failure, with the evidence and the directory
// holding every process's output and DATA_DIR (kept on failure, or with --keep).
//
// The Kafka broker. Torture never kills a broker it was not told it may kill:
// - BROKERS unset: it starts a broker of its own with scripts/kafka.sh, in a fresh
//   KAFKA_HOME_DIR under the temp folder and on two free ports, kills and restarts it
//   during the run, and stops it (and removes its folder) at the end;
// - BROKERS set: it uses that broker, and never kills it, unless `--broker-home DIR`
//   names the KAFKA_HOME_DIR scripts/kafka.sh runs it from (its server.properties must
//   listen on BROKERS' port and `scripts/kafka.sh status` must say it runs): then it
//   kills and restarts that broker with `scripts/kafka.sh kill` / `restart` (its data
//   is kept), and leaves it running at the end. CI does this with its own broker.
// `--log` defaults to embedded, plus kafka when BROKERS is set or Java and Maven are
// here to start a broker.
//
// The seed (printed first) decides the operations, the victims and the pauses; the
// timing, and so what each kill interrupts, cannot be replayed exactly.
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse, usage } from "../src/cli/args.js";
import { partitionForKey } from "../src/log/murmur2.js";
import { call, cents, decimal, historyOf, pool, type Reply } from "../test/exact-http.js";
import { haveCommand, uniquePrefix } from "../test/kafka-broker.js";
import { eventually, REPO_DIR, seededRandom, spawnApi, spawnProcessor } from "../test/support.js";

const HELP = `usage: bun run torture [--log embedded|kafka|both] [--cycles N] [--seed S] [--wallets N] [--concurrency N] [--broker-home DIR] [--drain-seconds N] [--keep]

SIGKILLs random processes (api, processors, on Kafka the broker) under a stream of
deposits, withdrawals and transfers with client retries, then checks that every
acknowledged operation was applied exactly once and money is conserved.

  --log            embedded, kafka or both (default: embedded, plus kafka when BROKERS is
                   set or a broker can be started with scripts/kafka.sh)
  --cycles N       kills, per log (default 50)
  --seed S         replays the choices of a run (not its timing); printed at start
  --wallets N      wallets the load runs over (default 16)
  --concurrency N  requests in flight (default 32)
  --broker-home D  with BROKERS: the KAFKA_HOME_DIR scripts/kafka.sh runs that broker
                   from; only then is the broker at BROKERS killed and restarted
  --drain-seconds  how long operations may take to be decided once the load stopped,
                   at each step of the drain (default 120)
  --keep           keep the run's directory (DATA_DIRs, process output) on success too`;

const { values } = parse(
  {
    log: { type: "string" },
    cycles: { type: "string" },
    seed: { type: "string" },
    wallets: { type: "string" },
    concurrency: { type: "string" },
    "broker-home": { type: "string" },
    "drain-seconds": { type: "string" },
    keep: { type: "boolean" },
  },
  HELP,
);

function whole(name: string, raw: string | undefined, fallback: number, min: number, max: number): number {
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) usage(`--${name} must be a whole number from ${min} to ${max}, got ${JSON.stringify(raw)}`, HELP);
  return Number(raw);
}

const CYCLES = whole("cycles", values.cycles, 50, 0, 100_000);
const SEED = whole("seed", values.seed, Math.floor(Math.random() * 2 ** 31), 0, 2 ** 32 - 1);
const WALLETS = whole("wallets", values.wallets, 16, 2, 10_000);
const CONCURRENCY = whole("concurrency", values.concurrency, 32, 1, 1_000);
const KEEP = Boolean(values.keep);
/** How long each step of the drain may take before an operation still undecided is reported. */
const DRAIN_MS = whole("drain-seconds", values["drain-seconds"], 120, 1, 3_600) * 1000;
if (values.log !== undefined && !["embedded", "kafka", "both"].includes(values.log)) usage(`--log must be embedded, kafka or both, got ${JSON.stringify(values.log)}`, HELP);
if (values["broker-home"] !== undefined && !process.env.BROKERS) usage("--broker-home names the home of the broker at BROKERS: set BROKERS too", HELP);

type LogName = "embedded" | "kafka";

/** The topics' partitions (the service's default, set for every process). */
const PARTITIONS = 12;

/** The service's settings for every process of a run. */
const SERVICE_ENV = {
  PARTITIONS: String(PARTITIONS),
  // Out of reach: a flag would reject every later debit of the wallet, and the load
  // would test less. The detector still runs.
  THRESHOLD_AMOUNT: "1000000000",
  EMBEDDED_POLL_MS: "10",
};

// The stream's shape.
const SHARE_DEPOSIT = 0.45;
const SHARE_WITHDRAWAL = 0.25; // the rest are transfers
const PREFER_WAIT_SHARE = 0.2;
const SHORT_TIMEOUT_SHARE = 0.03;
const DOUBLE_SUBMIT_SHARE = 0.02;
const ECHO_SHARE = 0.05;
const GIVE_UP_SHARE = 0.1;
const REQUEST_TIMEOUT_MS = 10_000;
/** A client gives up on an operation this long after its first attempt. */
const OPERATION_RETRY_MS = 90_000;
// The chaos' pace.
const GAP_MS: [number, number] = [400, 3_000];
/**
 * Of the api's cycles, this share stops it with SIGTERM (a graceful stop under the load)
 * instead of SIGKILL: every request it accepted must get an answer, and it must exit 0
 * within SHUTDOWN_TIMEOUT_MS.
 */
const TERM_SHARE = 0.5;
/** The service's SHUTDOWN_TIMEOUT_MS default, the bound its README gives for a stop. */
const SHUTDOWN_BOUND_MS = 10_000;
/**
 * The service's SHUTDOWN_GRACE_MS default: after SIGTERM it answers every request for
 * this long, then stops listening and closes its idle keep-alive connections. A request
 * sent on one of those just as it closes is reset (the race every HTTP/1.1 keep-alive
 * has, README "Shutdown"); so only a request sent within the grace, less a margin for
 * timers, must be answered.
 */
const SHUTDOWN_GRACE_MS = 500;
const GRACE_MARGIN_MS = 20;
const DOWN_MS: [number, number] = [0, 1_500];

// ---------------------------------------------------------------------------------
// Processes.

/** Something torture kills and starts again. */
interface Member {
  name: string;
  /** How often it is chosen, relative to the others. */
  weight: number;
  kills: number;
  start(): Promise<void>;
  /** SIGKILL; resolves once it is gone. */
  kill(): Promise<void>;
}

/** Every child process running, to kill if torture itself is interrupted. */
const live = new Set<Bun.Subprocess>();
/** scripts/kafka.sh's environment for a broker torture killed and has not restarted yet. */
let brokerDown: Record<string, string> | undefined;
/** A restart of it under way. */
let brokerRestart: Promise<unknown> | undefined;

/** Never leaves a broker torture killed behind dead (at the end, or when interrupted). */
async function restartBroker(): Promise<void> {
  if (await brokerRestart?.then(() => true, () => false)) return;
  const env = brokerDown;
  if (!env) return;
  await kafkaSh("restart", env);
  brokerDown = undefined;
}

/** A child process (api or processor) and its output, appended to its log file when it exits. */
class Child implements Member {
  kills = 0;
  private proc: Bun.Subprocess | undefined;
  /** The instances torture stopped or killed itself: their exits are no news. */
  private readonly stopped = new WeakSet<Bun.Subprocess>();
  private instance = 0;

  constructor(
    readonly name: string,
    readonly weight: number,
    private readonly logFile: string,
    private readonly launch: (output: (text: string) => void) => Promise<Bun.Subprocess>,
    private readonly problems: string[],
  ) {}

  async start(): Promise<void> {
    const instance = ++this.instance;
    // Each line stamped with the time it came (the service's own lines carry none).
    let out = "";
    let partial = "";
    const output = (text: string) => {
      const lines = (partial + text).split("\n");
      partial = lines.pop()!;
      for (const line of lines) out += `${new Date().toISOString().slice(11)} ${line}\n`;
    };
    const startedAt = new Date().toISOString();
    const proc = await this.launch(output);
    this.proc = proc;
    live.add(proc);
    proc.exited.then(async (code) => {
      live.delete(proc);
      // What it printed last may still be in the pipe.
      await Bun.sleep(200);
      if (partial) out += `${partial}\n`;
      appendFileSync(this.logFile, `=== ${this.name} #${instance} (pid ${proc.pid}) started ${startedAt}, exited ${new Date().toISOString()}: code ${code} signal ${proc.signalCode}\n${out}\n`);
      if (!this.stopped.has(proc)) this.problems.push(`${this.name} #${instance} exited by itself (code ${code}, signal ${proc.signalCode}): see ${this.logFile}`);
    });
  }

  running(): boolean {
    return this.proc !== undefined && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  async kill(): Promise<void> {
    const proc = this.proc;
    if (!proc) return;
    this.stopped.add(proc);
    proc.kill("SIGKILL");
    await proc.exited;
  }

  /** SIGTERM, and SIGKILL if it has not stopped within `ms`; whether it stopped by itself with status 0. */
  async stop(ms = 20_000): Promise<boolean> {
    if (!this.running()) return true;
    const proc = this.proc!;
    this.stopped.add(proc);
    proc.kill("SIGTERM");
    const code = await Promise.race([proc.exited, Bun.sleep(ms).then(() => "timeout" as const)]);
    if (code === "timeout") {
      proc.kill("SIGKILL");
      await proc.exited;
    }
    return code === 0;
  }
}

async function kafkaSh(command: string, env: Record<string, string>): Promise<string> {
  const proc = Bun.spawn(["bash", join(REPO_DIR, "scripts/kafka.sh"), command], { env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`scripts/kafka.sh ${command} failed (exit ${code}): ${err.slice(-2_000)}`);
  return out;
}

/** A port nobody listens on now. */
function freePort(): number {
  const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = server.port;
  server.stop(true);
  return port;
}

/** The broker a Kafka run uses; `env` is set when torture may kill it (scripts/kafka.sh's environment for it). */
interface Broker {
  brokers: string;
  env?: Record<string, string>;
  /** At the end of the run; with `keep`, a broker of torture's own is killed and its data kept (for a look at the topics). */
  close(keep: boolean): Promise<void>;
}

async function openBroker(): Promise<Broker> {
  const given = process.env.BROKERS;
  if (given) {
    const home = values["broker-home"];
    if (home === undefined) return { brokers: given, close: async () => {} };
    // Only the broker scripts/kafka.sh runs from that home, listening where BROKERS points.
    const props = readFileSync(join(home, "server.properties"), "utf8");
    const port = /^listeners=PLAINTEXT:\/\/[^:]+:(\d+),CONTROLLER:\/\/[^:]+:(\d+)/m.exec(props);
    if (!port || given.split(",").length !== 1 || !given.endsWith(`:${port[1]}`)) throw new Error(`--broker-home ${home} runs a broker on ${port?.[1] ?? "no port"}, BROKERS is ${given}`);
    const env = { KAFKA_HOME_DIR: home, KAFKA_PORT: port[1]!, KAFKA_CONTROLLER_PORT: port[2]! };
    await kafkaSh("status", env).catch(() => {
      throw new Error(`scripts/kafka.sh status says no broker runs from ${home}`);
    });
    return { brokers: given, env, close: async () => {} };
  }
  const home = mkdtempSync(join(tmpdir(), "depositaja-torture-kafka-"));
  const env = { KAFKA_HOME_DIR: home, KAFKA_PORT: String(freePort()), KAFKA_CONTROLLER_PORT: String(freePort()) };
  const started = Date.now();
  const out = await kafkaSh("start", env).catch((error) => {
    rmSync(home, { recursive: true, force: true });
    throw error;
  });
  const brokers = /BROKERS=(\S+)/.exec(out)?.[1];
  if (!brokers) throw new Error(`scripts/kafka.sh start printed no BROKERS: ${out}`);
  console.log(`[torture] started a broker of its own at ${brokers} in ${((Date.now() - started) / 1000).toFixed(1)} s (KAFKA_HOME_DIR ${home})`);
  return {
    brokers,
    env,
    close: async (keep) => {
      if (keep) {
        await kafkaSh("kill", env).catch((error) => console.error(`[torture] ${(error as Error).message}`));
        const vars = Object.entries(env).map(([k, v]) => `${k}=${v}`).join(" ");
        console.error(`[torture] the broker's data is kept: start it again with ${vars} bash scripts/kafka.sh restart (and stop it with ... stop)`);
        return;
      }
      await kafkaSh("stop", env).catch((error) => console.error(`[torture] ${(error as Error).message}`));
      rmSync(home, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------------------------
// The oracle: every operation sent, and what was answered.

type Kind = "deposit" | "withdrawal" | "transfer";

interface Op {
  key: string;
  kind: Kind;
  /** The operation's wallet (a transfer's source). */
  wallet: string;
  to?: string;
  amount: bigint;
  path: string;
  body: Record<string, string>;
  /** Any 2xx answer. */
  acked: boolean;
  /** Every attempt's outcome, in order ("202", "200 settled", "503", "network ConnectionRefused", ...). */
  trail: string[];
  /** Decisions answered during the run, to compare with the final status. */
  decisions: string[];
  /** GET of the operation after the drain: its status, or undefined for 404. */
  final?: { status: string; reason?: string; amount: string; kind: string; raw: string };
  found: boolean;
}

const ALLOWED_REASONS: Record<Kind, string[]> = { deposit: [], withdrawal: ["insufficient_funds"], transfer: ["insufficient_funds", "transfer_expired"] };

const describe = (op: Op) =>
  `${op.key} ${op.kind} ${op.wallet}${op.to ? ` -> ${op.to}` : ""} ${decimal(op.amount)} ${op.acked ? "acked" : "not acked"} [${op.trail.join(", ")}] final ${op.final ? `${op.final.status}${op.final.reason ? ` ${op.final.reason}` : ""}` : "404"}`;

interface Stats {
  requests: number;
  retriesAfter503: number;
  retriesAfterNetwork: number;
  retriesAfterTimeout: number;
  echoes: number;
  doubles: number;
  answered503: number;
  networkErrors: number;
  timeouts: number;
  /** Requests answered by an api after its SIGTERM (during its drain). */
  answeredAfterTerm: number;
  /** Requests sent to an api after its grace, reset as it closed their idle keep-alive connection. */
  resetAfterGrace: number;
  /** Requests to an api after its SIGTERM refused at connect (it had stopped listening). */
  refusedAfterTerm: number;
}

/** The outcome of one request: acknowledged, unavailable (503), no answer, or refused otherwise. */
type Outcome = { kind: "ack" } | { kind: "unavailable"; retryAfterMs: number } | { kind: "network" | "timeout" } | { kind: "refused" };

// ---------------------------------------------------------------------------------
// One run on one log.

interface Result {
  ok: boolean;
  lines: string[];
}

async function runOn(logName: LogName, broker: Broker | undefined): Promise<Result> {
  const started = Date.now();
  const runDir = mkdtempSync(join(tmpdir(), `depositaja-torture-${SEED}-${logName}-`));
  const logsDir = join(runDir, "logs");
  mkdirSync(logsDir);
  const problems: string[] = [];
  const notes: string[] = [];
  const rnd = seededRandom(SEED);
  const chaosRnd = seededRandom(SEED ^ 0x5bd1e995);
  const between = (r: () => number, [lo, hi]: [number, number]) => lo + Math.floor(r() * (hi - lo + 1));
  const env: Record<string, string> = {
    ...SERVICE_ENV,
    // Transfers cut off by a kill expire soon, so the drain is short; long enough that
    // most outlive the backlog a kill leaves (on Kafka a rebalance, a broker restart).
    TRANSFER_TIMEOUT_SECONDS: broker ? "20" : "10",
    BROKERS: broker?.brokers ?? "",
    TOPIC_PREFIX: broker ? uniquePrefix(`torture-${SEED}`) : "",
  };
  console.log(`[torture] ${logName}: seed ${SEED}, ${CYCLES} cycles, ${WALLETS} wallets, ${CONCURRENCY} in flight; run directory ${runDir}${env.TOPIC_PREFIX ? `, topic prefix ${env.TOPIC_PREFIX}` : ""}`);

  // The processes.
  let base = "";
  /** Which start of the api `base` is. */
  let apiInstance = 0;
  const dataDir = (name: string) => {
    const dir = join(runDir, name);
    mkdirSync(dir, { recursive: true });
    return dir;
  };
  const apiDir = dataDir(logName === "embedded" ? "data" : "api");
  const api = new Child("api", 1, join(logsDir, "api.log"), async (output) => {
    const spawned = await spawnApi("api", apiDir, env, { output });
    base = spawned.base;
    apiInstance++;
    return spawned.proc;
  }, problems);
  const processorNames = logName === "embedded" ? ["processor"] : ["processor-1", "processor-2"];
  const processors = processorNames.map((name) => {
    const dir = logName === "embedded" ? apiDir : dataDir(name);
    return new Child(name, 1, join(logsDir, `${name}.log`), async (output) => {
      const p = spawnProcessor(env, { dataDir: dir, output });
      // Running once it says so; its whole output is the log.
      const deadline = Date.now() + 60_000;
      while (!p.output().includes("processor running groups")) {
        if (p.proc.exitCode !== null || p.proc.signalCode !== null || Date.now() > deadline) {
          p.proc.kill("SIGKILL");
          throw new Error(`${name} did not start: ${p.output().slice(-2_000)}`);
        }
        await Bun.sleep(20);
      }
      return p.proc;
    }, problems);
  });
  const children = [api, ...processors];
  const members: Member[] = [...children];
  const brokerEnv = broker?.env;
  if (brokerEnv) {
    members.push({
      name: "broker",
      // A restart takes seconds: chosen less often.
      weight: 0.4,
      kills: 0,
      start: async () => {
        brokerRestart = kafkaSh("restart", brokerEnv);
        await brokerRestart;
        brokerRestart = undefined;
        brokerDown = undefined;
      },
      kill: async () => {
        brokerDown = brokerEnv;
        await kafkaSh("kill", brokerEnv);
      },
    });
  } else if (broker) notes.push("the broker at BROKERS is not killed (no --broker-home)");

  const ops: Op[] = [];
  const stats: Stats = { requests: 0, retriesAfter503: 0, retriesAfterNetwork: 0, retriesAfterTimeout: 0, echoes: 0, doubles: 0, answered503: 0, networkErrors: 0, timeouts: 0, answeredAfterTerm: 0, refusedAfterTerm: 0, resetAfterGrace: 0 };
  /** The api instances stopped with SIGTERM (by `apiInstance`), from when. */
  const termedAt = new Map<number, number>();
  /** How long each SIGTERMed api took to exit. */
  const termExitsMs: number[] = [];
  const wallet = (i: number) => `torture-w${i}`;
  const walletIds = Array.from({ length: WALLETS }, (_, i) => wallet(i));
  const initial = new Map<string, bigint>();
  let cyclesDone = 0;
  let loadStopping = false;
  let serial = 0;

  const newOp = (kind: Kind, from: string, to: string | undefined, amount: bigint, key = `t${SEED}-${serial++}`): Op => {
    const body: Record<string, string> =
      kind === "transfer" ? { from_wallet_id: from, to_wallet_id: to!, amount: decimal(amount) } : { wallet_id: from, amount: decimal(amount) };
    const op: Op = { key, kind, wallet: from, to, amount, path: `/${kind === "withdrawal" ? "withdraw" : kind}`, body, acked: false, trail: [], decisions: [], found: false };
    ops.push(op);
    return op;
  };

  const randomOp = (): Op => {
    const r = rnd();
    const from = walletIds[Math.floor(rnd() * WALLETS)]!;
    if (r < SHARE_DEPOSIT) return newOp("deposit", from, undefined, BigInt(between(rnd, [1, 10_000])));
    if (r < SHARE_DEPOSIT + SHARE_WITHDRAWAL) return newOp("withdrawal", from, undefined, BigInt(between(rnd, [1, 6_000])));
    let to = from;
    while (to === from) to = walletIds[Math.floor(rnd() * WALLETS)]!;
    return newOp("transfer", from, to, BigInt(between(rnd, [1, 4_000])));
  };

  /** Checks a 2xx answer is this operation's. */
  const checkAck = (op: Op, reply: Reply, what: string) => {
    const j = reply.json;
    const bad = (why: string) => problems.push(`${what} of ${describe(op)} answered ${reply.status} ${why}: ${reply.text.slice(0, 500)}`);
    if (!j) return bad("without JSON");
    if (j.operation_id !== op.key || j.kind !== op.kind || j.wallet_id !== op.wallet || (op.to !== undefined && j.to_wallet_id !== op.to)) return bad("for another operation");
    if (cents(String(j.amount)) !== op.amount) return bad(`with amount ${j.amount}`);
    if (reply.status === 202 && j.status !== "pending") return bad(`with status ${j.status}`);
    if (j.status === "settled" || j.status === "rejected") op.decisions.push(`${j.status}${j.reason ? ` ${j.reason}` : ""}`);
    else if (j.status !== "pending") bad(`with status ${j.status}`);
  };

  /** One request of `op`; `what` says why it is sent (for the evidence). */
  const attempt = async (op: Op, what: string): Promise<Outcome> => {
    stats.requests++;
    const headers: Record<string, string> = { "idempotency-key": op.key };
    if (rnd() < PREFER_WAIT_SHARE) headers.prefer = "wait=1";
    const timeoutMs = rnd() < SHORT_TIMEOUT_SHARE ? between(rnd, [1, 40]) : REQUEST_TIMEOUT_MS;
    const instance = apiInstance;
    const sentMs = Date.now();
    let reply: Reply;
    try {
      reply = await call(base, "POST", op.path, op.body, headers, timeoutMs);
    } catch (error) {
      const e = error as Error & { code?: string };
      const timeout = e.name === "TimeoutError" || e.name === "AbortError";
      if (timeout) stats.timeouts++;
      else stats.networkErrors++;
      // An api stopped gracefully answers whatever was sent to it within the grace: the
      // only errors allowed are a refused connection once it has stopped listening, a
      // reset of a request sent after the grace (see SHUTDOWN_GRACE_MS), and a timeout we
      // chose short.
      const term = termedAt.get(instance);
      if (term !== undefined && (e.code === "ECONNREFUSED" || e.code === "ConnectionRefused")) stats.refusedAfterTerm++;
      else if (term !== undefined && !(timeout && timeoutMs < REQUEST_TIMEOUT_MS)) {
        if (sentMs - term >= SHUTDOWN_GRACE_MS - GRACE_MARGIN_MS) stats.resetAfterGrace++;
        else problems.push(`${what} of ${describe(op)}, sent ${sentMs - term} ms after the api's SIGTERM (within its grace), got no answer (${e.code ?? e.name}: ${e.message}) ${Date.now() - term} ms after the signal`);
      }
      op.trail.push(timeout ? `timeout ${timeoutMs} ms` : `network ${e.code ?? e.name}`);
      return { kind: timeout ? "timeout" : "network" };
    }
    if (termedAt.has(instance)) stats.answeredAfterTerm++;
    const status = reply.json?.status;
    op.trail.push(`${reply.status}${status && reply.status < 300 ? ` ${status}` : ""}${reply.status >= 300 ? ` ${reply.json?.error?.code ?? ""}` : ""}`);
    if (reply.status === 200 || reply.status === 202) {
      checkAck(op, reply, what);
      return { kind: "ack" };
    }
    if (reply.status === 503) {
      stats.answered503++;
      const after = Number(reply.headers.get("retry-after") ?? "1");
      return { kind: "unavailable", retryAfterMs: (Number.isFinite(after) ? after : 1) * 1000 };
    }
    problems.push(`${what} of ${describe(op)} answered ${reply.status}: ${reply.text.slice(0, 500)}`);
    return { kind: "refused" };
  };

  const echoes: Op[] = [];

  /**
   * Sends `op` as a client does: the same key and body again after a 503 or no answer,
   * until acknowledged, or until this client gives up (`mayGiveUp`).
   */
  const drive = async (op: Op, mayGiveUp: boolean) => {
    const deadline = Date.now() + OPERATION_RETRY_MS;
    for (let n = 0; ; n++) {
      const what = n === 0 ? "request" : `retry ${n}`;
      const twice = n === 0 && rnd() < DOUBLE_SUBMIT_SHARE;
      if (twice) stats.doubles++;
      const outcomes = twice ? await Promise.all([attempt(op, what), attempt(op, `${what} (sent twice at once)`)]) : [await attempt(op, what)];
      if (outcomes.some((o) => o.kind === "ack")) {
        op.acked = true;
        if (rnd() < ECHO_SHARE) echoes.push(op);
        return;
      }
      if (outcomes.some((o) => o.kind === "refused")) return;
      if ((mayGiveUp && rnd() < GIVE_UP_SHARE) || Date.now() > deadline) return;
      const last = outcomes[outcomes.length - 1]!;
      if (last.kind === "unavailable") stats.retriesAfter503++;
      else if (last.kind === "timeout") stats.retriesAfterTimeout++;
      else stats.retriesAfterNetwork++;
      await Bun.sleep(last.kind === "unavailable" ? Math.floor(last.retryAfterMs * (0.2 + 0.8 * rnd())) : between(rnd, [50, 500]));
    }
  };

  /** A retry after a success: the same key and body must answer the same operation. */
  const echo = async (op: Op) => {
    stats.echoes++;
    await attempt(op, "retry after success");
  };

  const client = async () => {
    while (!loadStopping) {
      const again = echoes.length > 0 && rnd() < 0.3 ? echoes.shift() : undefined;
      if (again) await echo(again);
      else await drive(randomOp(), true);
    }
  };

  /** SIGTERM to the api under the load: it must exit 0 within the bound. */
  const terminateApi = async () => {
    const at = Date.now();
    termedAt.set(apiInstance, at);
    const exitedZero = await api.stop(SHUTDOWN_BOUND_MS + 5_000);
    const tookMs = Date.now() - at;
    termExitsMs.push(tookMs);
    if (!exitedZero) problems.push(`the api did not exit 0 within ${SHUTDOWN_BOUND_MS + 5_000} ms of SIGTERM under load (killed)`);
    else if (tookMs > SHUTDOWN_BOUND_MS) problems.push(`the api took ${tookMs} ms to exit after SIGTERM under load, past SHUTDOWN_TIMEOUT_MS (${SHUTDOWN_BOUND_MS} ms)`);
  };

  const chaos = async () => {
    const total = members.reduce((sum, m) => sum + m.weight, 0);
    // Every process once first, in a random order; then at random, by weight.
    const first = members.map((m) => ({ m, r: chaosRnd() })).sort((a, b) => a.r - b.r).map(({ m }) => m);
    for (let cycle = 1; cycle <= CYCLES; cycle++) {
      await Bun.sleep(between(chaosRnd, GAP_MS));
      let pick = chaosRnd() * total;
      const victim = first[cycle - 1] ?? members.find((m) => (pick -= m.weight) < 0) ?? members[members.length - 1]!;
      const down = between(chaosRnd, DOWN_MS);
      if (victim === api && chaosRnd() < TERM_SHARE) await terminateApi();
      else await victim.kill();
      victim.kills++;
      await Bun.sleep(down);
      await victim.start();
      cyclesDone = cycle;
      if (cycle % 10 === 0 || cycle === CYCLES) console.log(`[torture] ${logName}: cycle ${cycle}/${CYCLES}, ${ops.length} operations sent, ${ops.filter((o) => o.acked).length} acknowledged (${((Date.now() - started) / 1000).toFixed(0)} s)`);
    }
  };

  const lines: string[] = [];
  try {
    // Start, and open the wallets with money before any kill.
    await api.start();
    for (const p of processors) await p.start();
    await eventually(async () => {
      const ready = await call(base, "GET", "/ready", undefined, {}, 5_000);
      if (ready.status !== 200) throw new Error(`not ready: ${ready.text}`);
    }, 120_000, 200);
    for (const id of walletIds) initial.set(id, BigInt(between(rnd, [100, 50_000])));
    await pool(walletIds, 8, async (id) => {
      await eventually(async () => {
        const reply = await call(base, "POST", "/wallets", { wallet_id: id, initial_amount: decimal(initial.get(id)!) }, {}, 15_000);
        if (reply.status !== 201) throw new Error(`opening ${id}: ${reply.status} ${reply.text}`);
      }, 120_000, 200);
    });
    console.log(`[torture] ${logName}: cluster up and ${WALLETS} wallets opened in ${((Date.now() - started) / 1000).toFixed(1)} s`);

    // The storm.
    const loadStarted = Date.now();
    const clients = Array.from({ length: CONCURRENCY }, client);
    await chaos();
    // One graceful stop of the api under the load in every run, whatever the cycles chose.
    if (api.running()) {
      await terminateApi();
      await api.start();
      await Bun.sleep(1_000);
    }
    loadStopping = true;
    await Promise.all(clients);
    const loadMs = Date.now() - loadStarted;

    // Everything up; the api restarted gracefully, so nothing it took lands later.
    for (const c of children) if (!c.running()) await c.start();
    if (!(await api.stop())) notes.push("the api did not stop by itself within 20 s of SIGTERM (killed)");
    await api.start();
    await eventually(async () => {
      const ready = await call(base, "GET", "/ready", undefined, {}, 5_000);
      if (ready.status !== 200) throw new Error(`not ready after the storm: ${ready.text}`);
    }, 120_000, 200);

    const read = async (op: Op) => {
      const reply = await call(base, "GET", `/wallets/${encodeURIComponent(op.wallet)}/operations/${encodeURIComponent(op.key)}`, undefined, {}, 15_000).catch(() => undefined);
      if (!reply || (reply.status !== 200 && reply.status !== 404)) return;
      op.found = reply.status === 200;
      op.final = op.found ? { status: reply.json.status, reason: reply.json.reason, amount: String(reply.json.amount), kind: reply.json.kind, raw: reply.text } : undefined;
    };
    const settledOrRejected = (op: Op) => op.final?.status === "settled" || op.final?.status === "rejected";
    /** Polls `list` until `done` holds for each, or `ms` have passed; what is left. */
    const drain = async (list: Op[], done: (op: Op) => boolean, ms: number) => {
      const deadline = Date.now() + ms;
      let left = list;
      while (left.length > 0 && Date.now() < deadline) {
        await pool(left, CONCURRENCY, read);
        left = left.filter((op) => !done(op));
        if (left.length > 0) await Bun.sleep(500);
      }
      return left;
    };
    const where = (op: Op) => `${describe(op)} (commands partition ${partitionForKey(op.wallet, PARTITIONS)})`;

    // The quiet drain: with no new write, every acknowledged operation is decided (a
    // record left behind until the next write to its partition would show here).
    const drainStarted = Date.now();
    const quiet = await drain(ops.filter((op) => op.acked), settledOrRejected, DRAIN_MS);
    for (const op of quiet.slice(0, 30)) problems.push(`acknowledged, not decided ${DRAIN_MS / 1000} s after the load stopped, with no new write: ${where(op)}`);
    if (quiet.length > 30) problems.push(`... and ${quiet.length - 30} more acknowledged and not decided`);

    // The barrier: one more deposit per wallet, acknowledged whatever it takes. Once it
    // is decided, so is every command of its wallet stored before it: an operation
    // still unknown then was never stored (and if it was acknowledged, it is lost).
    const barriers = walletIds.map((id) => newOp("deposit", id, undefined, 1n, `barrier-${SEED}-${id}`));
    await pool(barriers, CONCURRENCY, (op) => drive(op, false));
    const barrierLeft = await drain(barriers, settledOrRejected, DRAIN_MS);
    for (const op of barrierLeft) problems.push(`barrier not decided: ${where(op)}`);
    const byWallet = new Map<string, Op>(barriers.map((b) => [b.wallet, b]));
    const undecided = await drain(ops, (op) => settledOrRejected(op) || (!op.found && settledOrRejected(byWallet.get(op.wallet)!)), DRAIN_MS);
    const drainMs = Date.now() - drainStarted;
    for (const op of quiet.filter((q) => settledOrRejected(q)).slice(0, 30)) problems.push(`decided only after the barrier wrote to its partition: ${where(op)}`);
    for (const op of undecided.slice(0, 30)) problems.push(`never decided: ${where(op)}`);
    if (undecided.length > 30) problems.push(`... and ${undecided.length - 30} more never decided`);

    // The books, until the views agree (they converge on their own; a real loss or double does not go away).
    let books = await eventually(async () => {
      const b = await audit(base, walletIds, initial, ops);
      if (b.problems.length > 0) throw Object.assign(new Error("books"), { books: b });
      return b;
    }, 30_000, 1_000).catch((error) => (error as { books?: Books }).books ?? Promise.reject(error));

    // The same keys again, after the drain: the same decisions, and nothing changes.
    const echoed = ops.filter((op) => op.acked && rnd() < ECHO_SHARE);
    await pool(echoed, CONCURRENCY, async (op) => {
      let reply: Reply | Error = new Error("not sent");
      // A 503 (the API may shed load) is no answer: asked again, a few times.
      for (let n = 0; n < 10 && (n === 0 || reply instanceof Error || reply.status === 503); n++) {
        if (n > 0) await Bun.sleep(500);
        reply = await call(base, "POST", op.path, op.body, { "idempotency-key": op.key }, REQUEST_TIMEOUT_MS).catch((error) => error as Error);
      }
      if (reply instanceof Error || reply.status !== 200 || reply.json?.status !== op.final?.status || reply.json?.reason !== op.final?.reason) {
        problems.push(`sent again after the drain, ${describe(op)} answered ${reply instanceof Error ? reply.message : `${reply.status} ${reply.text.slice(0, 300)}`}`);
      }
    });
    if (books.problems.length === 0) {
      const again = await audit(base, walletIds, initial, ops);
      if (again.total !== books.total) again.problems.push(`the balances moved after the drain: ${decimal(books.total)}, then ${decimal(again.total)}`);
      books = again;
    }
    problems.push(...books.problems);

    // The summary.
    const acked = ops.filter((o) => o.acked);
    const unacked = ops.filter((o) => !o.acked);
    const count = (list: Op[], f: (o: Op) => boolean) => list.filter(f).length;
    const kinds = (["deposit", "withdrawal", "transfer"] as Kind[]).map((k) => {
      const of = ops.filter((o) => o.kind === k);
      const reasons: Record<string, number> = {};
      for (const o of of) if (o.final?.status === "rejected") reasons[o.final.reason ?? "?"] = (reasons[o.final.reason ?? "?"] ?? 0) + 1;
      return `${k}s ${of.length} (${count(of, (o) => o.final?.status === "settled")} settled, ${count(of, (o) => o.final?.status === "rejected")} rejected ${JSON.stringify(reasons)})`;
    });
    const kills = members.map((m) => `${m.name} ${m.kills}`).join(", ");
    lines.push(
      `[torture] ${logName} seed ${SEED}: ${cyclesDone} cycles in ${(loadMs / 1000).toFixed(1)} s of load; kills: ${kills}`,
      `[torture] ${logName}: operations sent ${ops.length} (${kinds.join("; ")}), HTTP requests ${stats.requests}`,
      `[torture] ${logName}: acknowledged ${acked.length}; not acknowledged ${unacked.length} (the client gave up: ${count(unacked, (o) => o.found)} were stored and decided all the same, ${count(unacked, (o) => !o.found)} never stored)`,
      `[torture] ${logName}: retries: ${stats.retriesAfter503} after a 503, ${stats.retriesAfterNetwork} after a connection error, ${stats.retriesAfterTimeout} after a timeout, ${stats.echoes} after a success, ${stats.doubles} sent twice at once, ${echoed.length} again after the drain; answers: ${stats.answered503} 503s, ${stats.networkErrors} connection errors, ${stats.timeouts} timeouts`,
      `[torture] ${logName}: graceful stops of the api under load (SIGTERM: those of its cycles, and one at the end of the load): ${termExitsMs.length}, exited 0 in ${termExitsMs.length ? `${Math.min(...termExitsMs)}-${Math.max(...termExitsMs)} ms` : "-"} (bound ${SHUTDOWN_BOUND_MS} ms); requests answered after the signal ${stats.answeredAfterTerm}, refused at connect once it stopped listening ${stats.refusedAfterTerm}, sent after the grace and reset as it closed an idle keep-alive connection ${stats.resetAfterGrace}, sent within the grace and unanswered ${problems.filter((p) => p.includes("(within its grace), got no answer")).length}`,
      `[torture] ${logName}: lost ${books.lost}, duplicated ${books.duplicated}, money ${decimal(books.total)} = openings ${decimal(books.openings)} + settled deposits ${decimal(books.deposits)} - settled withdrawals ${decimal(books.withdrawals)}: ${books.total === books.openings + books.deposits - books.withdrawals ? "conserved" : "NOT CONSERVED"}`,
      `[torture] ${logName}: drained in ${(drainMs / 1000).toFixed(1)} s; wall time ${((Date.now() - started) / 1000).toFixed(1)} s${notes.length > 0 ? `; notes: ${notes.join("; ")}` : ""}`,
    );
  } catch (error) {
    problems.push(`the run stopped: ${(error as Error).stack ?? error}`);
  } finally {
    loadStopping = true;
    for (const c of children) await c.stop(10_000);
    await restartBroker().catch((error) => problems.push(`the broker could not be restarted: ${(error as Error).message}`));
    // The exit handlers have appended the output.
    await Bun.sleep(300);
  }

  const ok = problems.length === 0;
  if (ok) {
    lines.push(`[torture] ${logName}: OK`);
    if (!KEEP) rmSync(runDir, { recursive: true, force: true });
    else lines.push(`[torture] ${logName}: kept ${runDir}`);
  } else {
    lines.push(`[torture] ${logName}: FAILED with ${problems.length} problems (seed ${SEED}; replay: bun run torture --log ${logName} --seed ${SEED} --cycles ${CYCLES} --wallets ${WALLETS} --concurrency ${CONCURRENCY})`);
    for (const p of problems.slice(0, 60)) lines.push(`[torture] ${logName}: ${p.length > 1_500 ? `${p.slice(0, 1_500)}...` : p}`);
    if (problems.length > 60) lines.push(`[torture] ${logName}: ... ${problems.length - 60} more`);
    lines.push(`[torture] ${logName}: process output and DATA_DIRs kept in ${runDir}`);
  }
  for (const line of lines) (ok ? console.log : console.error)(line);
  return { ok, lines };
}

// ---------------------------------------------------------------------------------
// The books.

interface Books {
  problems: string[];
  lost: number;
  duplicated: number;
  total: bigint;
  openings: bigint;
  deposits: bigint;
  withdrawals: bigint;
}

interface Expected {
  op?: Op;
  kind: string;
  operationId: string;
  amount: bigint;
  counterparty?: string;
}

/** Reads every wallet and its history, and checks them against what the oracle expects. */
async function audit(base: string, walletIds: string[], initial: Map<string, bigint>, ops: Op[]): Promise<Books> {
  const problems: string[] = [];
  let lost = 0;
  let duplicated = 0;
  const books = { openings: 0n, deposits: 0n, withdrawals: 0n, total: 0n };
  // What each wallet's history must hold, by kind and operation id.
  const expected = new Map<string, Map<string, Expected>>(walletIds.map((id) => [id, new Map()]));
  const expect = (walletId: string, e: Expected) => expected.get(walletId)!.set(`${e.kind} ${e.operationId}`, e);
  const counts = new Map<string, { deposit: number; withdrawal: number; out: number; in: number; rejected: number }>(
    walletIds.map((id) => [id, { deposit: 0, withdrawal: 0, out: 0, in: 0, rejected: 0 }]),
  );
  const opsById = new Map<string, Op>(ops.map((op) => [op.key, op]));

  for (const id of walletIds) {
    expect(id, { kind: "open", operationId: "open", amount: initial.get(id)! });
    books.openings += initial.get(id)!;
  }
  for (const op of ops) {
    if (!op.found) {
      if (op.acked) {
        lost++;
        problems.push(`LOST (acknowledged, unknown to the service): ${describe(op)}`);
      }
      continue;
    }
    const f = op.final!;
    if (f.kind !== op.kind || cents(f.amount) !== op.amount) problems.push(`answered as another operation (${f.raw}): ${describe(op)}`);
    const last = op.decisions.find((d) => d !== `${f.status}${f.reason ? ` ${f.reason}` : ""}`);
    if (last !== undefined) problems.push(`decision changed: answered ${last} during the run: ${describe(op)}`);
    const c = counts.get(op.wallet)!;
    if (f.status === "rejected") {
      c.rejected++;
      if (!ALLOWED_REASONS[op.kind].includes(f.reason ?? "")) problems.push(`rejected for a reason the load cannot cause: ${describe(op)}`);
      continue;
    }
    if (f.status !== "settled") continue; // reported by the drain
    if (op.kind === "deposit") {
      c.deposit++;
      books.deposits += op.amount;
      expect(op.wallet, { op, kind: "deposit", operationId: op.key, amount: op.amount });
    } else if (op.kind === "withdrawal") {
      c.withdrawal++;
      books.withdrawals += op.amount;
      expect(op.wallet, { op, kind: "withdrawal", operationId: op.key, amount: -op.amount });
    } else {
      c.out++;
      counts.get(op.to!)!.in++;
      expect(op.wallet, { op, kind: "transfer_out", operationId: op.key, amount: -op.amount, counterparty: op.to });
      expect(op.to!, { op, kind: "transfer_in", operationId: op.key, amount: op.amount, counterparty: op.wallet });
    }
  }

  await pool(walletIds, 8, async (id) => {
    const reply = await call(base, "GET", `/wallets/${encodeURIComponent(id)}`, undefined, {}, 15_000);
    if (reply.status !== 200) throw new Error(`wallet ${id}: ${reply.status} ${reply.text}`);
    const w = reply.json;
    const entries = await historyOf(base, id);
    const balance = cents(String(w.balance));
    books.total += balance;
    if (cents(String(w.available)) < 0n) problems.push(`${id}: available ${w.available} below 0`);
    if (cents(String(w.held)) !== 0n) problems.push(`${id}: held ${w.held} at rest`);
    if (w.pending_transfer_count !== 0) problems.push(`${id}: ${w.pending_transfer_count} pending transfers at rest`);
    if (entries.length !== w.entry_count) problems.push(`${id}: ${entries.length} history entries, entry_count ${w.entry_count}`);
    const c = counts.get(id)!;
    const got = { deposit: w.deposit_count, withdrawal: w.withdrawal_count, out: w.transfer_out_count, in: w.transfer_in_count, rejected: w.rejected_count };
    if (JSON.stringify(got) !== JSON.stringify(c)) problems.push(`${id}: counts ${JSON.stringify(got)}, the oracle's ${JSON.stringify(c)}`);

    // Oldest first: numbered 1..n, each balance_after following from the one before.
    const want = expected.get(id)!;
    const seen = new Map<string, number>();
    let running = 0n;
    let wantBalance = 0n;
    for (const e of want.values()) wantBalance += e.amount;
    [...entries].reverse().forEach((e, k) => {
      if (e.entry_id !== k + 1) problems.push(`${id}: entry ${k + 1} is numbered ${e.entry_id}`);
      running += cents(String(e.amount));
      if (cents(String(e.balance_after)) !== running) problems.push(`${id}: entry ${e.entry_id} balance_after ${e.balance_after}, the entries sum to ${decimal(running)}`);
      const key = `${e.kind} ${e.operation_id}`;
      const n = (seen.get(key) ?? 0) + 1;
      seen.set(key, n);
      const x = want.get(key);
      if (!x) {
        const op = opsById.get(e.operation_id);
        problems.push(`${id}: entry ${e.entry_id} (${e.kind} ${e.operation_id} ${e.amount}) that no settled operation explains${op ? `: ${describe(op)}` : ""}`);
      } else if (cents(String(e.amount)) !== x.amount || (e.counterparty_wallet_id ?? undefined) !== x.counterparty) {
        problems.push(`${id}: entry ${e.entry_id} (${e.kind} ${e.operation_id} ${e.amount}, counterparty ${e.counterparty_wallet_id}) differs from ${decimal(x.amount)} ${x.counterparty ?? ""}`);
      }
    });
    for (const [key, x] of want) {
      const n = seen.get(key) ?? 0;
      if (n === 0) {
        lost++;
        problems.push(`LOST (settled, no ${x.kind} entry in ${id}'s history): ${x.op ? describe(x.op) : key}`);
      } else if (n > 1) {
        duplicated++;
        problems.push(`DUPLICATED (${n} ${x.kind} entries in ${id}'s history): ${x.op ? describe(x.op) : key}`);
      }
    }
    for (const [key, n] of seen) {
      if (n > 1 && !want.has(key)) {
        duplicated++;
        problems.push(`DUPLICATED (${n} ${key} entries in ${id}'s history, none expected)`);
      }
    }
    if (running !== balance) problems.push(`${id}: the history sums to ${decimal(running)}, balance ${w.balance}`);
    if (wantBalance !== balance) problems.push(`${id}: balance ${w.balance}, its settled operations make ${decimal(wantBalance)}`);
  });
  if (books.total !== books.openings + books.deposits - books.withdrawals) {
    problems.push(`money not conserved: the balances sum to ${decimal(books.total)}, openings + settled deposits - settled withdrawals to ${decimal(books.openings + books.deposits - books.withdrawals)}`);
  }
  return { problems, lost, duplicated, ...books };
}

// ---------------------------------------------------------------------------------

async function main(): Promise<number> {
  const wantKafka = values.log === "kafka" || values.log === "both";
  const logs: LogName[] =
    values.log === "embedded"
      ? ["embedded"]
      : values.log === "kafka"
        ? ["kafka"]
        : wantKafka || process.env.BROKERS || (haveCommand("java") && haveCommand("mvn"))
          ? ["embedded", "kafka"]
          : ["embedded"];
  console.log(`[torture] seed ${SEED} (replay: bun run torture --seed ${SEED}); logs: ${logs.join(", ")}`);
  if (values.log === undefined && !logs.includes("kafka")) console.log("[torture] kafka skipped: BROKERS is unset and Java and Maven are not here to start a broker");
  const results: Result[] = [];
  let broker: Broker | undefined;
  const cleanup = async (keep = false) => {
    for (const proc of live) proc.kill("SIGKILL");
    await restartBroker().catch((error) => console.error(`[torture] ${(error as Error).message}`));
    const b = broker;
    broker = undefined;
    await b?.close(keep);
  };
  process.once("SIGINT", () => void cleanup().finally(() => process.exit(130)));
  process.once("SIGTERM", () => void cleanup().finally(() => process.exit(143)));
  try {
    for (const log of logs) {
      if (log === "kafka") broker = await openBroker();
      results.push(await runOn(log, broker));
    }
  } catch (error) {
    console.error(`[torture] ${(error as Error).stack ?? error}`);
    return 1;
  } finally {
    await cleanup(KEEP || results.some((r) => !r.ok));
  }
  if (results.length > 1) for (const r of results) for (const line of r.lines.filter((l) => /: (OK|FAILED|lost|\S+ seed)/.test(l))) console.log(line);
  return results.every((r) => r.ok) ? 0 : 1;
}

process.exit(await main());

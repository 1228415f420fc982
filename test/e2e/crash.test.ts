import { Database } from "bun:sqlite";
import { expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { eventually, spawnDev, tempDataDir, seededRandom } from "../support.js";

/**
 * Crash test of a real `dev` process: clients stream deposits, the process is killed
 * with SIGKILL, restarted on the same DATA_DIR, and clients retry what was not
 * acknowledged with the same Idempotency-Key. Every wallet's balance must then be the
 * exact sum of its deposits, each counted once: nothing acknowledged is lost, and a
 * retry of a deposit that was stored before the kill is not counted twice.
 */

type Status = "pending" | "acked" | "failed";

interface Deposit {
  key: string;
  wallet: string;
  cents: bigint;
  amount: string;
  status: Status;
  /** HTTP statuses other than 202, or "network", seen for this deposit. */
  failures: string[];
}

type Dev = Awaited<ReturnType<typeof spawnDev>>;

const WALLETS = Array.from({ length: 40 }, (_, i) => `crash-wallet-${i}`);
const CONCURRENCY = 8;
/** The test reads DATA_DIR/log.db, so it pins the embedded log even if BROKERS is set. */
const EMBEDDED = { BROKERS: "" };
const REQUEST_TIMEOUT_MS = 5_000;
const RETRY_DEADLINE_MS = 15_000;
const CONVERGE_TIMEOUT_MS = 30_000;
/** Round 2 is run again only while this much of the test's time has not been used. */
const REPEAT_BEFORE_MS = 30_000;

const rng = seededRandom;

/** Minor units as the API renders them: the shortest exact decimal (1234 -> "12.34", 1230 -> "12.3", 1200 -> "12"). */
function formatCents(cents: bigint): string {
  const integer = cents / 100n;
  const fraction = (cents % 100n).toString().padStart(2, "0").replace(/0+$/, "");
  return fraction ? `${integer}.${fraction}` : `${integer}`;
}

/** Sends one deposit; returns the HTTP status, or "network" if no status came back. */
async function post(base: string, d: Deposit): Promise<number | "network"> {
  let res: Response;
  try {
    res = await fetch(`${base}/deposit`, {
      method: "POST",
      headers: { "content-type": "application/json", "idempotency-key": d.key },
      body: JSON.stringify({ wallet_id: d.wallet, amount: d.amount }),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch {
    return "network";
  }
  // A 202 status line is the acknowledgement: the API answers only after the log has
  // stored the deposit. The body may be cut by the kill; check it when it arrives.
  const text = await res.text().catch(() => undefined);
  if ((res.status === 202 || res.status === 200) && text !== undefined) {
    expect(text).toContain(`"deposit_id":${JSON.stringify(d.key)}`);
    expect(text).toContain(`"amount":${formatCents(d.cents)},`);
  }
  return res.status;
}

/** Reads a wallet's /check and returns the raw balance text and the counts, parsed from the text. */
async function check(base: string, wallet: string): Promise<{ balance: string; count: number; rejected: number; raw: string }> {
  const res = await fetch(`${base}/check/${wallet}`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  const raw = await res.text();
  expect(res.status).toBe(200);
  const balance = /"balance":(-?\d+(?:\.\d+)?)[,}]/.exec(raw)?.[1];
  const count = /"deposit_count":(\d+)[,}]/.exec(raw)?.[1];
  const rejected = /"rejected_deposit_count":(\d+)[,}]/.exec(raw)?.[1];
  if (balance === undefined || count === undefined || rejected === undefined) throw new Error(`unexpected /check body: ${raw}`);
  return { balance, count: Number(count), rejected: Number(rejected), raw };
}

/** Waits for a child's exit, bounded. */
async function exitCode(proc: Bun.Subprocess, timeoutMs: number): Promise<number | "timeout"> {
  return Promise.race([proc.exited, Bun.sleep(timeoutMs).then(() => "timeout" as const)]);
}

/**
 * How far the balance processor is behind the log: deposits appended to the log but
 * not yet committed as applied by the balance group, both in DATA_DIR/log.db (the
 * embedded log keeps the groups' state in its own file). A read-only connection, so
 * it can watch a running process (WAL readers never block it) and read what a killed
 * one left, before the restart.
 */
function lagProbe(dataDir: string): { read(): { logged: number; applied: number }; close(): void } {
  const log = new Database(join(dataDir, "log.db"), { readonly: true });
  const loggedQuery = log.query("SELECT COALESCE(SUM(next_offset), 0) AS n FROM partition_heads WHERE topic = 'commands'");
  const appliedQuery = log.query("SELECT COALESCE(SUM(next_offset), 0) AS n FROM progress WHERE owner = 'balance' AND topic = 'commands'");
  return {
    read: () => ({ logged: (loggedQuery.get() as { n: number }).n, applied: (appliedQuery.get() as { n: number }).n }),
    close() {
      log.close();
    },
  };
}

function processingLag(dataDir: string): { logged: number; applied: number } {
  const probe = lagProbe(dataDir);
  try {
    return probe.read();
  } finally {
    probe.close();
  }
}

test("SIGKILL of dev loses no acknowledged deposit and counts no retry twice", async () => {
  const startedMs = Date.now();
  const seed = Number(process.env.CRASH_SEED ?? Date.now() % 2 ** 31);
  const random = rng(seed);
  console.log(`[crash] seed ${seed} (replay with CRASH_SEED=${seed})`);

  const data = tempDataDir();
  const deposits: Deposit[] = [];
  let serial = 0;
  let dev: Dev | undefined;

  const newDeposit = (round: number): Deposit => {
    const cents = BigInt(1 + Math.floor(random() * 9_999)); // 0.01 to 99.99
    const amount = `${cents / 100n}.${(cents % 100n).toString().padStart(2, "0")}`; // always two decimals, e.g. "12.30"
    const d: Deposit = {
      key: `crash-${seed}-r${round}-${serial++}`,
      wallet: WALLETS[Math.floor(random() * WALLETS.length)]!,
      cents,
      amount,
      status: "pending",
      failures: [],
    };
    deposits.push(d);
    return d;
  };

  /**
   * `concurrency` clients stream new deposits to `current`; once `killAfterAcks` of
   * them are acknowledged, the process is killed with SIGKILL at once, with others in
   * flight. With `whenBehind`, the kill waits (streaming on) until the balance
   * processor is seen behind the log, so that it lands between appends and commits.
   */
  const streamAndKill = async (current: Dev, round: number, killAfterAcks: number, concurrency: number, whenBehind = false) => {
    let stop = false;
    let acked = 0;
    let inFlightAtKill = -1;
    let ackedAtKill = -1;
    let lagAtKill = -1;
    let probe: ReturnType<typeof lagProbe> | undefined;
    const kill = () => {
      stop = true;
      ackedAtKill = acked;
      inFlightAtKill = deposits.filter((d) => d.status === "pending" && d.key.includes(`-r${round}-`)).length;
      current.proc.kill("SIGKILL");
    };
    const maybeKill = () => {
      if (stop || acked < killAfterAcks) return;
      if (whenBehind && acked < killAfterAcks + 5_000) {
        probe ??= lagProbe(data.dir);
        const lag = probe.read();
        if (lag.logged <= lag.applied) return;
        lagAtKill = lag.logged - lag.applied;
      }
      kill();
    };
    const client = async () => {
      while (!stop) {
        const d = newDeposit(round);
        const status = await post(current.base, d);
        if (status === 202 || status === 200) {
          d.status = "acked";
          acked++;
          maybeKill();
        } else {
          d.status = "failed";
          d.failures.push(String(status));
          // Before the kill nothing may fail; after it, network errors are expected.
          if (!stop) throw new Error(`deposit ${d.key} failed before the kill: ${status}`);
        }
      }
    };
    const safety = setTimeout(() => { if (!stop) kill(); }, 20_000);
    try {
      await Promise.all(Array.from({ length: concurrency }, client));
    } finally {
      clearTimeout(safety);
      probe?.close();
    }
    const code = await exitCode(current.proc, 10_000);
    expect(code).not.toBe("timeout");
    expect(current.proc.signalCode).toBe("SIGKILL");
    const roundDeposits = deposits.filter((d) => d.key.includes(`-r${round}-`));
    const notAcked = roundDeposits.filter((d) => d.status !== "acked").length;
    return { ackedAtKill, inFlightAtKill, lagAtKill, sent: roundDeposits.length, acked: roundDeposits.length - notAcked, notAcked };
  };

  /** A client's retry: every deposit not acknowledged is sent again, same key and amount, until it gets 202. */
  const retryUnacked = async (current: Dev) => {
    const queue = deposits.filter((d) => d.status !== "acked");
    const total = queue.length;
    const deadline = Date.now() + RETRY_DEADLINE_MS;
    const client = async () => {
      for (let d = queue.shift(); d; d = queue.shift()) {
        for (;;) {
          const status = await post(current.base, d);
          if (status === 202 || status === 200) {
            d.status = "acked";
            break;
          }
          d.failures.push(String(status));
          if (Date.now() > deadline) throw new Error(`retry of ${d.key} never acknowledged: ${d.failures.join(", ")}`);
          await Bun.sleep(50);
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, client));
    return total;
  };

  /** Every wallet's /check equals the exact sum and count of its distinct deposits. */
  const expectTotals = async (current: Dev) => {
    const expected = new Map<string, { cents: bigint; count: number }>(WALLETS.map((w) => [w, { cents: 0n, count: 0 }]));
    for (const d of deposits) {
      expect(d.status).toBe("acked");
      const e = expected.get(d.wallet)!;
      e.cents += d.cents;
      e.count++;
    }
    const began = Date.now();
    await eventually(async () => {
      const mismatches: string[] = [];
      await Promise.all(WALLETS.map(async (w) => {
        const got = await check(current.base, w);
        const want = expected.get(w)!;
        if (got.balance !== formatCents(want.cents) || got.count !== want.count || got.rejected !== 0) {
          const retried = deposits.filter((d) => d.wallet === w && d.failures.length > 0).map((d) => `${d.key} ${d.amount} (${d.failures.join(",")})`);
          mismatches.push(`${w}: want balance ${formatCents(want.cents)} count ${want.count}, got ${got.raw}; retried: ${retried.join("; ") || "none"}`);
        }
      }));
      if (mismatches.length > 0) throw new Error(`${mismatches.length} wallets differ:\n${mismatches.slice(0, 5).join("\n")}`);
    }, CONVERGE_TIMEOUT_MS, 100);
    return Date.now() - began;
  };

  try {
    // Round 1: a stream from concurrent clients, killed after a random number of acks.
    dev = await spawnDev(data.dir, EMBEDDED);
    const killAt1 = 300 + Math.floor(random() * 501);
    const r1 = await streamAndKill(dev, 1, killAt1, CONCURRENCY);
    const lag1 = processingLag(data.dir);
    console.log(`[crash] round 1: kill after ${r1.ackedAtKill} acks (target ${killAt1}), ${r1.inFlightAtKill} in flight at the kill; `
      + `${r1.sent} sent, ${r1.acked} acked, ${r1.notAcked} not acked (${lag1.logged - r1.acked} of them stored all the same); `
      + `log had ${lag1.logged} deposits, balance had applied ${lag1.applied}`);
    expect(r1.ackedAtKill).toBeGreaterThan(0);
    // Every acknowledged deposit is in the log (the log holds at least the acked ones).
    expect(lag1.logged).toBeGreaterThanOrEqual(r1.acked);

    dev = await spawnDev(data.dir, EMBEDDED);
    const retried1 = await retryUnacked(dev);
    const converged1 = await expectTotals(dev);
    console.log(`[crash] round 1: retried ${retried1} deposits after restart; totals converged in ${converged1} ms`);

    // Round 2: a burst from more clients, killed right after its acks while the balance
    // processor is seen behind the log, so the kill lands between the log append and
    // the processor's commit. Should it catch up in the instant before the signal
    // lands (the files show no lag), the round is run again, at most 3 times.
    let landedBehind = false;
    for (let attempt = 1; attempt <= 3 && !landedBehind && (attempt === 1 || Date.now() - startedMs < REPEAT_BEFORE_MS); attempt++) {
      const round = 1 + attempt;
      const killAt = 300 + Math.floor(random() * 301);
      const before = processingLag(data.dir).logged;
      const r = await streamAndKill(dev, round, killAt, 4 * CONCURRENCY, true);
      const lag = processingLag(data.dir);
      landedBehind = lag.logged > lag.applied;
      console.log(`[crash] round ${round}: kill after ${r.ackedAtKill} acks (target ${killAt}), seen ${r.lagAtKill} behind, `
        + `${r.inFlightAtKill} in flight at the kill; ${r.sent} sent, ${r.acked} acked, ${r.notAcked} not acked `
        + `(${lag.logged - before - r.acked} of them stored all the same); `
        + `log had ${lag.logged} deposit records, balance had applied ${lag.applied} `
        + `(${lag.logged - lag.applied} appended but not committed)`);
      expect(r.ackedAtKill).toBeGreaterThan(0);

      dev = await spawnDev(data.dir, EMBEDDED);
      const retried = await retryUnacked(dev);
      const converged = await expectTotals(dev);
      console.log(`[crash] round ${round}: retried ${retried} deposits after restart; totals converged in ${converged} ms`);
    }
    expect(landedBehind).toBe(true);

    // Graceful shutdown of the last process.
    const final = dev;
    final.proc.kill("SIGTERM");
    expect(await exitCode(final.proc, 15_000)).toBe(0);
    dev = undefined;

    // Retries of deposits that were stored before a kill are duplicates in the log;
    // the totals above show they were not counted twice.
    const logged = processingLag(data.dir).logged;
    console.log(`[crash] ${deposits.length} distinct deposits, ${logged} deposit records in the log `
      + `(${logged - deposits.length} retries of deposits already stored); total ${Date.now() - startedMs} ms`);
    expect(logged).toBeGreaterThanOrEqual(deposits.length);
  } finally {
    if (dev && dev.proc.exitCode === null && dev.proc.signalCode === null) {
      dev.proc.kill("SIGKILL");
      await exitCode(dev.proc, 10_000);
    }
    if (process.env.CRASH_KEEP_DATA) console.log(`[crash] kept DATA_DIR ${data.dir}`);
    else if (existsSync(data.dir)) data.cleanup();
  }
}, 120_000);

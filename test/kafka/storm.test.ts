// A transfer storm on a real Kafka broker: an `api` process and two `processor`
// instances; 50 wallets opened with money (some with none); 2,000 transfers fired
// concurrently among them at random (both directions at once, chains, cycles, fans,
// hot wallets, some larger than available). Mid-storm one processor is killed with
// SIGKILL and an instance is started again on its DATA_DIR, so partitions move twice
// and the victim's uncommitted or unpublished work is redone by others.
//
// When the storm has drained, every transfer must have a terminal status, money must be
// conserved to the cent, no balance negative, no hold left, and the ledger consistent
// with the balances, the counts and the transfers' statuses.
//
// STORM_SEED=<n> replays a run's choices (wallets, amounts, transfers, victim, restart
// mode; not the timing, so a failure may take several runs to come back);
// STORM_RESTART=takeover|early forces the restart mode. The seed is printed.
// STORM_KEEP_LOGS=1 writes the processors' output to files on success too (always on failure).
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { partitionForKey } from "../../src/log/murmur2.js";
import { call, cents, decimal, historyOf, pool, type Reply } from "../exact-http.js";
import { kafkaOrSkip, uniquePrefix } from "../kafka-broker.js";
import { eventually, heldPartitions, REPO_DIR, spawnApi, spawnProcessor, tempDataDir, type ProcessorProcess, seededRandom } from "../support.js";

const brokers = await kafkaOrSkip("transfer storm on Kafka");

const WALLETS = 50;
const TRANSFERS = 2_000;
const IN_FLIGHT = 128;
const PARTITIONS = 12;
/** The share of transfers acknowledged when the victim is killed. */
const KILL_AT = Math.floor(TRANSFERS * 0.3);
/** In "early" mode, the share acknowledged when the victim's DATA_DIR is started again. */
const RESTART_EARLY_AT = Math.floor(TRANSFERS * 0.6);
const DRAIN_TIMEOUT_MS = 120_000;
const wallet = (i: number) => `storm-${i}`;

// ---------------------------------------------------------------------------------
// The storm's plan, from a seed.

const prng = seededRandom;

interface Transfer {
  n: number;
  id: string;
  from: string;
  to: string;
  amount: bigint;
  pattern: string;
}

function plan(seed: number): { initial: bigint[]; transfers: Transfer[] } {
  const rnd = prng(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
  // A tenth of the wallets open empty; the others with up to 1,000.00.
  const initial = Array.from({ length: WALLETS }, () => (rnd() < 0.1 ? 0n : BigInt(int(1, 100_000))));
  // A few hot wallets take part in about a third of all transfers.
  const hot = [0, 1, 2, 3, 4];
  const pick = (not: number[]) => {
    for (;;) {
      const i = rnd() < 0.3 ? hot[int(0, hot.length - 1)]! : int(0, WALLETS - 1);
      if (!not.includes(i)) return i;
    }
  };
  const distinct = (k: number) => {
    const chosen: number[] = [];
    while (chosen.length < k) chosen.push(pick(chosen));
    return chosen;
  };
  // Mostly small amounts (0.01 to 50.00), some large (200.00 to 3,000.00): those often
  // exceed what the source has available.
  const amount = () => (rnd() < 0.85 ? BigInt(int(1, 5_000)) : BigInt(int(20_000, 300_000)));
  const transfers: Transfer[] = [];
  const add = (pattern: string, from: number, to: number, a = amount()) => {
    if (transfers.length >= TRANSFERS) return;
    const n = transfers.length;
    transfers.push({ n, id: `storm-${seed}-${n}`, from: wallet(from), to: wallet(to), amount: a, pattern });
  };
  while (transfers.length < TRANSFERS) {
    const r = rnd();
    if (r < 0.45) {
      const [a, b] = distinct(2) as [number, number];
      add("random", a, b);
    } else if (r < 0.6) {
      // Both directions at once, sometimes the same amount.
      const [a, b] = distinct(2) as [number, number];
      const x = amount();
      add("both-ways", a, b, x);
      add("both-ways", b, a, rnd() < 0.5 ? x : amount());
    } else if (r < 0.75) {
      // A chain: each hop may or may not be covered by the one before it.
      const w = distinct(int(3, 5));
      const x = amount();
      for (let i = 0; i + 1 < w.length; i++) add("chain", w[i]!, w[i + 1]!, x);
    } else if (r < 0.88) {
      // A cycle of the same amount: if all settle, nobody's balance changes.
      const w = distinct(int(2, 4));
      const x = amount();
      for (let i = 0; i < w.length; i++) add("cycle", w[i]!, w[(i + 1) % w.length]!, x);
    } else if (r < 0.94) {
      const [a, ...others] = distinct(4) as [number, ...number[]];
      for (const b of others) add("fan-out", a, b);
    } else {
      const [a, ...others] = distinct(4) as [number, ...number[]];
      for (const b of others) add("fan-in", b, a);
    }
  }
  return { initial, transfers };
}

// ---------------------------------------------------------------------------------

type Mode = "takeover" | "early";

describe.skipIf(!brokers)("transfer storm on Kafka", () => {
  const seed = Number(process.env.STORM_SEED ?? Math.floor(Math.random() * 2 ** 31));
  const mode: Mode = (process.env.STORM_RESTART as Mode | undefined) ?? (seed % 2 === 0 ? "takeover" : "early");
  const env = { BROKERS: brokers ?? "", TOPIC_PREFIX: uniquePrefix("storm") };
  const apiData = tempDataDir();
  const dirs = [tempDataDir(), tempDataDir()];
  // Every processor ever started, in order, with the DATA_DIR it ran on.
  const processors: { name: string; dir: string; p: ProcessorProcess }[] = [];
  let api: { proc: Bun.Subprocess; base: string } | undefined;

  const start = (name: string, dir: string) => {
    const p = spawnProcessor(env, { dataDir: dir });
    processors.push({ name, dir, p });
    return p;
  };

  afterAll(async () => {
    for (const { p } of processors) if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill("SIGKILL");
    if (api) {
      // Graceful, but bounded: with the broker away a graceful stop may wait on it.
      api.proc.kill("SIGTERM");
      const stopped = await Promise.race([api.proc.exited.then(() => true), Bun.sleep(10_000).then(() => false)]);
      if (!stopped) api.proc.kill("SIGKILL");
      await api.proc.exited;
    }
    for (const { p } of processors) await p.proc.exited;
    for (const d of dirs) d.cleanup();
    apiData.cleanup();
  }, 30_000);

  test("2,000 concurrent transfers through a SIGKILL and a restart: all decided, money conserved, ledger consistent", async () => {
    const started = Date.now();
    const { initial, transfers } = plan(seed);
    console.log(`[storm] seed=${seed} restart=${mode} prefix=${env.TOPIC_PREFIX} (replay: STORM_SEED=${seed})`);

    // What the one-line summary says, filled in as the storm goes (printed on failure too).
    const facts: Record<string, string> = { transfers: `${TRANSFERS} transfers among ${WALLETS} wallets` };
    const summary = () => `[storm] seed=${seed}: ${Object.values(facts).join("; ")}; whole test ${((Date.now() - started) / 1000).toFixed(1)} s`;

    // Diagnostics, on failure: the processors' whole output, dead letters and what was stuck.
    const diagnostics: string[] = [];
    const dumpLogs = () => {
      const dir = join(tmpdir(), `depositaja-storm-${seed}-${Date.now().toString(36)}`);
      mkdirSync(dir, { recursive: true });
      processors.forEach(({ name, dir: dataDir, p }, i) =>
        writeFileSync(join(dir, `${i}-${name}.log`), `DATA_DIR=${dataDir} exit=${p.proc.exitCode} signal=${p.proc.signalCode}\n${p.output()}`),
      );
      writeFileSync(join(dir, "diagnostics.txt"), diagnostics.join("\n"));
      return dir;
    };
    /** The records of a topic of this run (through `inspect`, for at most a few seconds). */
    const topicRecords = async (topic: string): Promise<string[]> => {
      const proc = Bun.spawn([process.execPath, join(REPO_DIR, "src/cli/inspect.ts"), topic, "--from-beginning"], {
        cwd: REPO_DIR,
        env: { ...process.env, ...env },
        stdout: "pipe",
        stderr: "ignore",
      });
      const timer = setTimeout(() => proc.kill("SIGKILL"), 5_000);
      const text = await new Response(proc.stdout).text();
      clearTimeout(timer);
      return text.split("\n").filter((line) => line.startsWith("{"));
    };

    try {
      api = await spawnApi("api", apiData.dir, env);
      const base = api.base;
      const [p1, p2] = [start("p1", dirs[0]!.dir), start("p2", dirs[1]!.dir)];
      await eventually(async () => expect((await fetch(`${base}/ready`)).status).toBe(200), 60_000, 200);
      await eventually(() => {
        expect(heldPartitions(p1.output(), "balance").size).toBeGreaterThan(0);
        expect(heldPartitions(p2.output(), "balance").size).toBeGreaterThan(0);
      }, 60_000, 200);

      // The wallets, opened (201 once decided; a 202 is asked again with the same content).
      await pool(Array.from({ length: WALLETS }, (_, i) => i), 25, async (i) => {
        const body: Record<string, string> = { wallet_id: wallet(i) };
        if (initial[i]! > 0n) body.initial_amount = decimal(initial[i]!);
        await eventually(async () => {
          const reply = await call(base, "POST", "/wallets", body);
          expect({ wallet: wallet(i), status: reply.status }).toEqual({ wallet: wallet(i), status: 201 });
          expect(cents(reply.json.balance)).toBe(initial[i]!);
        }, 60_000, 200);
      });
      const totalInitial = initial.reduce((a, b) => a + b, 0n);

      // The victim and the survivor, by the seed.
      const victimIndex = seed % 3 === 0 ? 1 : 0;
      const victim = processors[victimIndex]!;
      const survivor = processors[1 - victimIndex]!;
      const victimHeld = heldPartitions(victim.p.output(), "balance");
      let restarted: ProcessorProcess | undefined;
      let restartTask: Promise<void> | undefined;
      let killedAt = -1;
      let restartedAt = -1;
      let unavailable = 0;
      let networkErrors = 0;
      let acked = 0;

      const kill = () => {
        killedAt = acked;
        victim.p.proc.kill("SIGKILL");
        const restart = () => {
          restartedAt = acked;
          restarted = start(`${victim.name}-restarted`, victim.dir);
        };
        restartTask = (async () => {
          await victim.p.proc.exited;
          if (mode === "takeover") {
            // Once the survivor has taken every partition over (the victim's session ran out).
            await eventually(() => expect(heldPartitions(survivor.p.output(), "balance").size).toBe(PARTITIONS), 60_000, 100);
            restart();
          } else {
            // Soon, while the dead member may still be in the group.
            await eventually(() => expect(acked >= RESTART_EARLY_AT || acked === TRANSFERS).toBe(true), 60_000, 10);
            restart();
          }
        })();
        // Awaited after the storm; kept from counting as unhandled meanwhile.
        restartTask.catch(() => {});
      };

      const send = async (t: Transfer): Promise<void> => {
        const deadline = Date.now() + 60_000;
        for (;;) {
          let reply: Reply | undefined;
          try {
            reply = await call(base, "POST", "/transfer", { from_wallet_id: t.from, to_wallet_id: t.to, amount: decimal(t.amount) }, { "idempotency-key": t.id });
          } catch (error) {
            networkErrors++;
            if (Date.now() > deadline) throw new Error(`transfer ${t.id}: ${(error as Error).message}`);
            await Bun.sleep(200);
            continue;
          }
          if (reply.status === 202 || reply.status === 200) {
            expect(reply.json.operation_id).toBe(t.id);
            if (++acked === KILL_AT) kill();
            return;
          }
          if (reply.status === 503 && Date.now() <= deadline) {
            // The log hiccuped: the write may or may not be stored; the same key counts once.
            unavailable++;
            await Bun.sleep(500);
            continue;
          }
          throw new Error(`transfer ${t.id} (${t.from} -> ${t.to}, ${decimal(t.amount)}): ${reply.status} ${reply.text}`);
        }
      };

      const stormStarted = Date.now();
      await pool(transfers, IN_FLIGHT, send);
      facts.acked = `acked in ${((Date.now() - stormStarted) / 1000).toFixed(1)} s (${unavailable} 503s and ${networkErrors} network errors retried)`;
      expect(acked).toBe(TRANSFERS);
      expect(killedAt).toBe(KILL_AT);
      await restartTask;
      expect(await victim.p.proc.exited).not.toBe(0);
      expect(restarted).toBeDefined();
      facts.killed = `SIGKILLed ${victim.name} (held balance partitions ${[...victimHeld].join(",")}) at ${killedAt} acked, restarted on its DATA_DIR (${mode}) at ${restartedAt} acked`;

      // Drain: every transfer decided at its source.
      const status = new Map<string, any>();
      const undecided = new Set(transfers);
      const drainDeadline = Date.now() + DRAIN_TIMEOUT_MS;
      while (undecided.size > 0 && Date.now() < drainDeadline) {
        await pool([...undecided], 64, async (t) => {
          const reply = await call(base, "GET", `/wallets/${t.from}/operations/${encodeURIComponent(t.id)}`);
          if (reply.status !== 200) return; // not in the view yet: the command is on its way
          if (reply.json.status === "settled" || reply.json.status === "rejected") {
            status.set(t.id, reply.json);
            undecided.delete(t);
          }
        });
        if (undecided.size > 0) await Bun.sleep(250);
      }
      facts.drained = `${undecided.size === 0 ? "drained" : `${undecided.size} still undecided`} after ${((Date.now() - stormStarted) / 1000).toFixed(1)} s`;
      if (undecided.size > 0) {
        for (const t of [...undecided].slice(0, 50)) {
          const reply = await call(base, "GET", `/wallets/${t.from}/operations/${encodeURIComponent(t.id)}`);
          diagnostics.push(
            `stuck ${t.id} ${t.pattern} ${t.from}(p${partitionForKey(t.from, PARTITIONS)}) -> ${t.to}(p${partitionForKey(t.to, PARTITIONS)}) ${decimal(t.amount)}: ${reply.status} ${reply.text}`,
          );
        }
      }
      expect({ undecided: undecided.size, first: [...undecided].slice(0, 10).map((t) => t.id) }).toEqual({ undecided: 0, first: [] });

      // The live instances hold every partition between them; the restarted one has some.
      const live = [survivor.p, restarted!];
      for (const p of live) expect({ exit: p.proc.exitCode, signal: p.proc.signalCode }).toEqual({ exit: null, signal: null });
      await eventually(() => {
        const held = live.map((p) => heldPartitions(p.output(), "balance"));
        expect(held[1]!.size).toBeGreaterThan(0);
        expect(new Set(held.flatMap((h) => [...h])).size).toBe(PARTITIONS);
      }, 60_000, 200);

      const settled = transfers.filter((t) => status.get(t.id).status === "settled");
      const rejected = transfers.filter((t) => status.get(t.id).status === "rejected");
      const reasons: Record<string, number> = {};
      for (const t of rejected) reasons[status.get(t.id).reason] = (reasons[status.get(t.id).reason] ?? 0) + 1;
      facts.outcome = `${settled.length} settled, ${rejected.length} rejected ${JSON.stringify(reasons)}`;
      // Every wallet is opened and no transfer goes to its source: only these two are possible.
      expect(Object.keys(reasons).filter((r) => r !== "insufficient_funds" && r !== "transfer_expired")).toEqual([]);
      for (const t of transfers) expect(cents(status.get(t.id).amount)).toBe(t.amount);

      // The books. The views converge on their own; the check is repeated until they have.
      const settledIds = new Set(settled.map((t) => t.id));
      const byId = new Map(transfers.map((t) => [t.id, t]));
      let lastProblems: string[] = [];
      const books = async () => {
        const problems: string[] = [];
        const wallets = new Map<string, any>();
        const histories = new Map<string, any[]>();
        await pool(Array.from({ length: WALLETS }, (_, i) => wallet(i)), 10, async (id) => {
          const reply = await call(base, "GET", `/wallets/${id}`);
          if (reply.status !== 200) throw new Error(`wallet ${id}: ${reply.status} ${reply.text}`);
          wallets.set(id, reply.json);
          histories.set(id, await historyOf(base, id));
        });
        let total = 0n;
        let outCount = 0;
        let inCount = 0;
        const outs = new Map<string, number>();
        const ins = new Map<string, number>();
        for (let i = 0; i < WALLETS; i++) {
          const id = wallet(i);
          const w = wallets.get(id);
          const balance = cents(w.balance);
          total += balance;
          outCount += w.transfer_out_count;
          inCount += w.transfer_in_count;
          if (balance < 0n) problems.push(`${id}: negative balance ${w.balance}`);
          if (cents(w.held) !== 0n) problems.push(`${id}: held ${w.held}`);
          if (w.pending_transfer_count !== 0) problems.push(`${id}: pending_transfer_count ${w.pending_transfer_count}`);
          if (w.opened_at === null) problems.push(`${id}: not opened`);
          const entries = histories.get(id)!;
          if (entries.length !== w.entry_count) problems.push(`${id}: ${entries.length} history entries, entry_count ${w.entry_count}`);
          // Oldest first: numbered 1, 2, 3, ... and each balance_after follows from the one before.
          const ascending = [...entries].reverse();
          let running = 0n;
          let opened = 0n;
          ascending.forEach((e, k) => {
            if (e.entry_id !== k + 1) problems.push(`${id}: entry ${k + 1} is numbered ${e.entry_id}`);
            running += cents(e.amount);
            if (cents(e.balance_after) !== running) problems.push(`${id}: entry ${e.entry_id} balance_after ${e.balance_after}, entries sum to ${decimal(running)}`);
            if (e.kind === "open") opened += cents(e.amount);
            else if (e.kind === "transfer_out" || e.kind === "transfer_in") {
              const t = byId.get(e.operation_id);
              const mine = e.kind === "transfer_out" ? t?.from : t?.to;
              const other = e.kind === "transfer_out" ? t?.to : t?.from;
              const sign = e.kind === "transfer_out" ? -1n : 1n;
              if (!t || mine !== id || e.counterparty_wallet_id !== other || cents(e.amount) !== sign * t.amount) {
                problems.push(`${id}: entry ${e.entry_id} ${e.kind} ${e.operation_id} ${e.amount} (counterparty ${e.counterparty_wallet_id}) matches no transfer of this wallet`);
              }
              const seen = e.kind === "transfer_out" ? outs : ins;
              seen.set(e.operation_id, (seen.get(e.operation_id) ?? 0) + 1);
            } else problems.push(`${id}: unexpected entry kind ${e.kind} (${e.operation_id})`);
          });
          if (running !== balance) problems.push(`${id}: history sums to ${decimal(running)}, balance ${w.balance}`);
          if (opened !== initial[i]!) problems.push(`${id}: opened with ${decimal(opened)}, expected ${decimal(initial[i]!)}`);
        }
        if (total !== totalInitial) problems.push(`money not conserved: balances sum to ${decimal(total)}, initial amounts to ${decimal(totalInitial)}`);
        if (outCount !== settled.length) problems.push(`transfer_out_count totals ${outCount}, settled ${settled.length}`);
        if (inCount !== settled.length) problems.push(`transfer_in_count totals ${inCount}, settled ${settled.length}`);
        for (const t of transfers) {
          const o = outs.get(t.id) ?? 0;
          const n = ins.get(t.id) ?? 0;
          const want = settledIds.has(t.id) ? 1 : 0;
          if (o !== want || n !== want) {
            problems.push(`${t.id} (${status.get(t.id).status}${status.get(t.id).reason ? ` ${status.get(t.id).reason}` : ""}, ${t.from} -> ${t.to}, ${decimal(t.amount)}): ${o} transfer_out and ${n} transfer_in entries, expected ${want}`);
          }
        }
        lastProblems = problems;
        expect(problems.slice(0, 30)).toEqual([]);
        return { total };
      };
      try {
        const { total } = await eventually(books, 30_000, 500);
        facts.money = `money ${decimal(total)} = ${decimal(totalInitial)}`;
      } catch (error) {
        diagnostics.push(...lastProblems);
        throw error;
      }

      // A decided status never changes.
      const changed: string[] = [];
      await pool(transfers, 64, async (t) => {
        const reply = await call(base, "GET", `/wallets/${t.from}/operations/${encodeURIComponent(t.id)}`);
        const first = status.get(t.id);
        if (reply.status !== 200 || reply.json.status !== first.status || reply.json.reason !== first.reason) changed.push(`${t.id}: was ${first.status} ${first.reason ?? ""}, now ${reply.status} ${reply.text}`);
      });
      diagnostics.push(...changed);
      expect(changed.slice(0, 10)).toEqual([]);

      // A client retrying after the storm (same keys, same content) changes nothing.
      const retried = transfers.filter((_, k) => k % 20 === 0);
      await pool(retried, 32, async (t) => {
        const reply = await call(base, "POST", "/transfer", { from_wallet_id: t.from, to_wallet_id: t.to, amount: decimal(t.amount) }, { "idempotency-key": t.id });
        expect({ id: t.id, http: reply.status, status: reply.json?.status }).toEqual({ id: t.id, http: 200, status: status.get(t.id).status });
      });
      await books();

      if (process.env.STORM_KEEP_LOGS) console.log(`[storm] processor logs in ${dumpLogs()}`);
      console.log(summary());
    } catch (error) {
      // The dead letters of the run say what the processors refused (a step no wallet expected, ...).
      for (const topic of ["transfers.dlq", "commands.dlq", "balance-timers.dlq"]) {
        const records = await topicRecords(topic).catch(() => []);
        if (records.length > 0) diagnostics.push(`${records.length} dead letters on ${topic}:`, ...records);
      }
      console.log(`${summary()}; FAILED`);
      console.error(`[storm] FAILED seed=${seed} restart=${mode} prefix=${env.TOPIC_PREFIX}: processor logs and diagnostics in ${dumpLogs()}`);
      for (const line of diagnostics.slice(0, 40)) console.error(`[storm] ${line.length > 600 ? `${line.slice(0, 600)}...` : line}`);
      throw error;
    }
  }, 240_000);
});

// The command-line tools against a running `bun run dev` child process: they write to
// the same embedded log (DATA_DIR), and the dev process's API shows the result.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { loadConfig } from "../../src/config.js";
import { partitionForKey } from "../../src/log/murmur2.js";
import { openLog } from "../../src/log/open.js";
import { decodeDeadLetter } from "../../src/runtime/dead-letter.js";
import { backends, eventually, readTopic, runCli, spawnDev, tempDataDir, testConfig } from "../support.js";

interface CheckBody {
  wallet_id: string;
  balance: number;
  above_threshold: boolean;
  deposit_count: number;
  rejected_deposit_count: number;
  flag: { reason: string; flagged_at: string | null } | null;
}

// Generous limits: other work may share the machine. A passing run takes about 5 s.
const CONVERGE_MS = 20_000;
setDefaultTimeout(30_000);

const SEED_WALLET = "0x1a3565a67721b6ab46fB11d5CF33A72D871aEbA3";

async function check(base: string, walletId: string): Promise<CheckBody> {
  const res = await fetch(`${base}/check/${encodeURIComponent(walletId)}`);
  expect(res.status).toBe(200);
  return (await res.json()) as CheckBody;
}

function untilCount(base: string, walletId: string, count: number): Promise<CheckBody> {
  return eventually(async () => {
    const state = await check(base, walletId);
    expect(state.deposit_count).toBe(count);
    return state;
  }, CONVERGE_MS);
}

for (const backend of await backends("CLIs")) {
  describe(`CLIs against a running dev process on the ${backend.name} log`, () => {
    let data: ReturnType<typeof tempDataDir>;
    let dev: Awaited<ReturnType<typeof spawnDev>>;
    let env: Record<string, string>;
    let partitions: number;
    let barrierCount = 0;

    async function cli(script: string, args: string[]) {
      return runCli(script, args, env);
    }

    /** emit-deposit, which must succeed; returns its JSON line. */
    async function emit(wallet: string, amount: string, extra: string[] = []) {
      const run = await cli("emit-deposit", ["--wallet", wallet, "--amount", amount, ...extra]);
      expect(run.stderr).toBe("");
      expect(run.code).toBe(0);
      return JSON.parse(run.stdout) as { deposit_id: string; position: { topic: string; partition: number; offset: number } };
    }

    /**
     * Deposits more than the threshold into a fresh wallet in the same partition as
     * `walletId`, after `walletId`'s deposits, and waits for it to be flagged. Every stage
     * (deposits, detector, flags, flagger, its changelog, the view) is keyed by wallet,
     * co-partitioned and in order, so any flag `walletId` was going to get is visible then.
     */
    async function thresholdBarrier(walletId: string): Promise<void> {
      const target = partitionForKey(walletId, partitions);
      let barrier: string;
      do barrier = `cli-barrier-${++barrierCount}`;
      while (partitionForKey(barrier, partitions) !== target);
      const line = await emit(barrier, "10000.01");
      expect(line.position.partition).toBe(target);
      await eventually(async () => expect((await check(dev.base, barrier)).above_threshold).toBe(true), CONVERGE_MS);
    }

    beforeAll(async () => {
      data = tempDataDir();
      env = { ...backend.env(), DATA_DIR: data.dir };
      partitions = testConfig(data.dir).partitions;
      dev = await spawnDev(data.dir, env);
    });

    afterAll(() => {
      if (dev.proc.exitCode === null) dev.proc.kill("SIGKILL");
      data.cleanup();
    });

    test("flag-wallet sets above_threshold within a second, and --remove clears it", async () => {
      const wallet = "cli-manual-flag";
      const set = await cli("flag-wallet", ["--wallet", wallet]);
      expect(set.code).toBe(0);
      expect(JSON.parse(set.stdout)).toMatchObject({ wallet_id: wallet, flagged: true });
      const flagged = await eventually(async () => {
        const state = await check(dev.base, wallet);
        expect(state.above_threshold).toBe(true);
        return state;
      }, 1000);
      expect(flagged.flag?.reason).toBe("manual");

      const clear = await cli("flag-wallet", ["--wallet", wallet, "--remove"]);
      expect(clear.code).toBe(0);
      expect(JSON.parse(clear.stdout)).toMatchObject({ wallet_id: wallet, flagged: false });
      const cleared = await eventually(async () => {
        const state = await check(dev.base, wallet);
        expect(state.above_threshold).toBe(false);
        return state;
      }, 1000);
      expect(cleared.flag).toBeNull();
    });

    test("9,000 + 9,000 115 s apart breach the sliding window (the seed's resetting window missed this)", async () => {
      const wallet = "cli-window-115s";
      await emit(wallet, "9000", ["--at", "2026-01-01T00:00:10Z"]);
      await emit(wallet, "9000", ["--at", "2026-01-01T00:02:05Z"]);
      const state = await eventually(async () => {
        const s = await check(dev.base, wallet);
        expect(s.above_threshold).toBe(true);
        return s;
      }, CONVERGE_MS);
      expect(state.flag?.reason).toBe("threshold");
      // The flag carries the event time of the breaching deposit, not the clock.
      expect(state.flag?.flagged_at).toBe("2026-01-01T00:02:05.000Z");
    });

    test("the window is over event time: the same deposits arriving in reverse order breach too", async () => {
      const wallet = "cli-window-reversed";
      await emit(wallet, "9000", ["--at", "2026-01-01T00:02:05Z"]);
      await emit(wallet, "9000", ["--at", "2026-01-01T00:00:10Z"]);
      await eventually(async () => expect((await check(dev.base, wallet)).above_threshold).toBe(true), CONVERGE_MS);
    });

    test("9,000 + 9,000 exactly 120 s apart do not breach (the window is half-open)", async () => {
      const wallet = "cli-window-120s";
      await emit(wallet, "9000", ["--at", "2026-01-01T00:00:00Z"]);
      await emit(wallet, "9000", ["--at", "2026-01-01T00:02:00Z"]);
      await untilCount(dev.base, wallet, 2);
      await thresholdBarrier(wallet);
      const state = await check(dev.base, wallet);
      expect(state).toMatchObject({ balance: 18000, deposit_count: 2, above_threshold: false, flag: null });
    });

    test("exactly 120 s apart, arriving in reverse order, do not breach either", async () => {
      const wallet = "cli-window-120s-reversed";
      await emit(wallet, "9000", ["--at", "2026-01-01T00:02:00Z"]);
      await emit(wallet, "9000", ["--at", "2026-01-01T00:00:00Z"]);
      await untilCount(dev.base, wallet, 2);
      await thresholdBarrier(wallet);
      const state = await check(dev.base, wallet);
      expect(state).toMatchObject({ balance: 18000, deposit_count: 2, above_threshold: false, flag: null });
    });

    test("emit-deposit --id twice for the same wallet is counted once", async () => {
      const wallet = "cli-dedupe";
      const first = await emit(wallet, "5", ["--id", "import-1"]);
      const again = await emit(wallet, "5", ["--id", "import-1"]);
      expect(first.deposit_id).toBe("import-1");
      expect(again.deposit_id).toBe("import-1");
      // Both records are in the log; only the count says whether they were deduplicated.
      expect(again.position.offset).toBe(first.position.offset + 1);
      await emit(wallet, "1", ["--id", "import-2"]);
      const state = await untilCount(dev.base, wallet, 2);
      expect(state).toMatchObject({ balance: 6, rejected_deposit_count: 0 });
    });

    test("a poison record from a trusted producer lands in deposits.dlq, and the deposits after it count", async () => {
      const wallet = "cli-poison";
      const log = await openLog(loadConfig(env), "cli");
      try {
        await log.produce([{ topic: "deposits", key: wallet, value: new Uint8Array([0xff, 0xff, 0xff]), headers: { producer: "kcat" } }]);
      } finally {
        await log.close();
      }
      await emit(wallet, "7");
      expect((await untilCount(dev.base, wallet, 1)).balance).toBe(7);
      const letters = await eventually(async () => {
        const run = await cli("inspect", ["deposits.dlq", "--from-beginning", "-n", "2"]);
        expect(run.code).toBe(0);
        return run.stdout.trim().split("\n").map((line) => JSON.parse(line));
      }, CONVERGE_MS);
      expect(letters.map((l) => l.value.group).sort()).toEqual(["balance", "threshold"]);
      for (const letter of letters) {
        expect(letter.key).toBe(wallet);
        expect(letter.value).toMatchObject({ reason_code: "undecodable", key: wallet, headers: { producer: "kcat" }, source: { topic: "deposits" } });
        expect(letter.value.value).toEqual({ undecodable_base64: Buffer.from([0xff, 0xff, 0xff]).toString("base64") });
      }
    });

    test("a deposit dated far ahead is dead-lettered and does not blind the detector (it anchored the window in 9999)", async () => {
      const wallet = "cli-future-dated";
      await emit(wallet, "1", ["--at", "9999-01-01T00:00:00Z"]);
      for (const amount of ["6000", "5000"]) {
        const res = await fetch(`${dev.base}/deposit`, { method: "POST", body: JSON.stringify({ wallet_id: wallet, amount }) });
        expect(res.status).toBe(202);
      }
      const state = await eventually(async () => {
        const s = await check(dev.base, wallet);
        expect(s.above_threshold).toBe(true);
        return s;
      }, CONVERGE_MS);
      expect(state).toMatchObject({ balance: 11000, deposit_count: 2 });
      const log = await openLog(loadConfig(env), "cli");
      try {
        const letters = await eventually(async () => {
          const mine = (await readTopic(log, "deposits.dlq")).filter((r) => r.key === wallet).map((r) => decodeDeadLetter(r.value));
          expect(mine).toHaveLength(2);
          return mine;
        }, CONVERGE_MS);
        expect(letters.map((l) => l.group).sort()).toEqual(["balance", "threshold"]);
        for (const letter of letters) expect(letter.reasonCode).toBe("event_time_too_far_ahead");
      } finally {
        await log.close();
      }
    });

    describe("emit-deposit refuses bad input with exit code 2 and writes nothing", () => {
      const wallet = "cli-bad-input";

      test("--amount abc", async () => {
        const run = await cli("emit-deposit", ["--wallet", wallet, "--amount", "abc"]);
        expect(run.code).toBe(2);
        expect(run.stderr).toContain("amount");
        expect(run.stdout).toBe("");
      });

      test("--at not-a-time", async () => {
        const run = await cli("emit-deposit", ["--wallet", wallet, "--amount", "5", "--at", "not-a-time"]);
        expect(run.code).toBe(2);
        expect(run.stderr).toContain("--at");
        expect(run.stdout).toBe("");
      });

      test("missing --wallet", async () => {
        const run = await cli("emit-deposit", ["--amount", "5"]);
        expect(run.code).toBe(2);
        expect(run.stderr).toContain("--wallet");
        expect(run.stdout).toBe("");
      });

      test("an unknown flag", async () => {
        const run = await cli("emit-deposit", ["--wallet", wallet, "--amount", "5", "--amuont", "6"]);
        expect(run.code).toBe(2);
        expect(run.stdout).toBe("");
      });

      test("none of them reached the wallet", async () => {
        await emit(wallet, "1");
        const state = await untilCount(dev.base, wallet, 1);
        expect(state.balance).toBe(1);
      });
    });

    test("SIGTERM stops dev gracefully with exit code 0", async () => {
      dev.proc.kill("SIGTERM");
      const code = await Promise.race([dev.proc.exited, Bun.sleep(10_000).then(() => "still running")]);
      expect(code).toBe(0);
    });
  });

  describe(`inspect on the ${backend.name} log`, () => {
    let data: ReturnType<typeof tempDataDir>;
    beforeAll(() => {
      data = tempDataDir();
    });
    afterAll(() => data.cleanup());

    test("deposits --from-beginning -n 2 prints two decoded JSON lines, in Kafka's partitions", async () => {
      const env = { ...backend.env(), DATA_DIR: data.dir };
      const partitions = testConfig(data.dir).partitions;
      const emitted = new Map<string, { partition: number; offset: number }>();
      for (const [wallet, amount, id, at] of [
        [SEED_WALLET, "2000", "dep-seed", "2026-01-01T00:00:10Z"],
        ["inspect-other", "20.5", "dep-other", "2026-01-01T00:00:11Z"],
      ] as const) {
        const run = await runCli("emit-deposit", ["--wallet", wallet, "--amount", amount, "--id", id, "--at", at], env);
        expect(run.code).toBe(0);
        emitted.set(wallet, JSON.parse(run.stdout).position);
      }

      const run = await runCli("inspect", ["deposits", "--from-beginning", "-n", "2"], env);
      expect(run.code).toBe(0);
      const lines = run.stdout.trim().split("\n");
      expect(lines).toHaveLength(2);
      const byKey = new Map(lines.map((line) => {
        const record = JSON.parse(line);
        return [record.key as string, record];
      }));
      expect([...byKey.keys()].sort()).toEqual(["inspect-other", SEED_WALLET].sort());

      const seed = byKey.get(SEED_WALLET);
      expect(seed.partition).toBe(partitionForKey(SEED_WALLET, partitions));
      expect({ partition: seed.partition, offset: seed.offset }).toEqual({ partition: emitted.get(SEED_WALLET)!.partition, offset: emitted.get(SEED_WALLET)!.offset });
      expect(seed.value).toEqual({
        depositId: "dep-seed",
        walletId: SEED_WALLET,
        amountMinor: "200000",
        eventTime: "2026-01-01T00:00:10Z",
      });

      const other = byKey.get("inspect-other");
      expect(other.partition).toBe(partitionForKey("inspect-other", partitions));
      expect(other.offset).toBe(emitted.get("inspect-other")!.offset);
      expect(other.value).toMatchObject({ walletId: "inspect-other", amountMinor: "2050", depositId: "dep-other" });
    });
  });
}

import { expect, test } from "bun:test";
import { join } from "node:path";
import { partitionForKey } from "../../src/log/murmur2.js";
import { deposits } from "../../src/topics/deposits.js";
import { kafkaOrSkip, uniquePrefix } from "../kafka-broker.js";
import { eventually, REPO_DIR, spawnDev, tempDataDir } from "../support.js";

/**
 * The deposits topic is a public interface (proto/depositaja/v1/events.proto): any
 * trusted producer may write it. Here the official Java client (scripts/kafka/Produce.java)
 * writes raw protobuf Deposits to a running `dev`, choosing partitions with its own
 * default partitioner. That proves two things at once: our murmur2 (src/log/murmur2.ts)
 * places a key where the Java client does, and the processors count deposits from a
 * foreign producer, including a repeated deposit id only once.
 */

const PARTITIONS = 12; // dev's default PARTITIONS
const SEED_WALLET = "0x1a3565a67721b6ab46fB11d5CF33A72D871aEbA3";
const LONG_KEY = Array.from({ length: 128 }, (_, i) => "abcdefghijklmnopqrstuvwxyz0123456789-_"[(i * 7) % 38]).join("");

/** Wallets beyond the seed one: ASCII, multi-byte UTF-8, the 128-character maximum, and a key whose length is not a multiple of 4. */
const OTHERS: { wallet: string; minor: bigint; balance: string }[] = [
  { wallet: "wallet-1", minor: 100n, balance: "1" },
  { wallet: "wallet-2", minor: 250n, balance: "2.5" },
  { wallet: "ü-wallet", minor: 99_999n, balance: "999.99" },
  { wallet: LONG_KEY, minor: 4_321n, balance: "43.21" },
  { wallet: "abc", minor: 7n, balance: "0.07" },
];

const brokers = await kafkaOrSkip("external producer");

if (brokers) {
  // One JVM launch per record (~1-2 s each, compile included): sequential on purpose.
  const classpath = (() => {
    const out = Bun.spawnSync(["bash", join(REPO_DIR, "scripts/kafka.sh"), "classpath"], { stderr: "inherit" });
    if (out.exitCode !== 0) throw new Error("scripts/kafka.sh classpath failed");
    return out.stdout.toString().trim();
  })();

  /** Produces `value` with the Java client; returns where its default partitioner put it. */
  async function javaProduce(topic: string, key: string, value: Uint8Array): Promise<{ partition: number; offset: number }> {
    const proc = Bun.spawn(
      ["java", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", classpath, join(REPO_DIR, "scripts/kafka/Produce.java"), brokers!, topic, key],
      { stdin: value, stdout: "pipe", stderr: "pipe" },
    );
    const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    const match = /^(\d+) (\d+)\s*$/.exec(out);
    if (code !== 0 || !match) throw new Error(`Produce.java failed (exit ${code}): ${out}\n${err}`);
    return { partition: Number(match[1]), offset: Number(match[2]) };
  }

  async function check(base: string, wallet: string): Promise<{ text: string; body: { balance: number; deposit_count: number; rejected_deposit_count: number } }> {
    const res = await fetch(`${base}/check/${encodeURIComponent(wallet)}`);
    const text = await res.text();
    expect(res.status).toBe(200);
    return { text, body: JSON.parse(text) };
  }

  /** Waits until the wallet shows exactly `balance` (as the API renders it) over `count` deposits. */
  function expectBalance(base: string, wallet: string, balance: string, count: number) {
    return eventually(async () => {
      const { text, body } = await check(base, wallet);
      expect(text).toContain(`"balance":${balance},`);
      expect(body.deposit_count).toBe(count);
      expect(body.rejected_deposit_count).toBe(0);
    }, 15_000);
  }

  test("deposits from the Java client land where our partitioner says and are counted once", async () => {
    const prefix = uniquePrefix("external");
    const topic = `${prefix}deposits`;
    const data = tempDataDir();
    const dev = await spawnDev(data.dir, { BROKERS: brokers, TOPIC_PREFIX: prefix });
    try {
      // Ready means the topics exist (auto-creation is off on the test broker) and the views caught up.
      await eventually(async () => expect((await fetch(`${dev.base}/ready`)).status).toBe(200), 30_000, 100);

      const seedValue = deposits.codec.encode({ depositId: "ext-1", walletId: SEED_WALLET, amountMinor: 123_456n, eventTimeMs: Date.now() });
      const seed = await javaProduce(topic, SEED_WALLET, seedValue);
      expect(seed.partition).toBe(partitionForKey(SEED_WALLET, PARTITIONS));
      await expectBalance(dev.base, SEED_WALLET, "1234.56", 1);

      const observed: Record<string, number> = { [SEED_WALLET]: seed.partition };
      for (const [i, w] of OTHERS.entries()) {
        const value = deposits.codec.encode({ depositId: `ext-${w.wallet.length}-${i}`, walletId: w.wallet, amountMinor: w.minor, eventTimeMs: Date.now() });
        const at = await javaProduce(topic, w.wallet, value);
        observed[w.wallet] = at.partition;
        expect({ wallet: w.wallet, partition: at.partition }).toEqual({ wallet: w.wallet, partition: partitionForKey(w.wallet, PARTITIONS) });
        await expectBalance(dev.base, w.wallet, w.balance, 1);
      }
      console.log("external producer: Java partitions", JSON.stringify(observed));

      // A producer unsure whether its write landed sends the same deposit again: same
      // id, same amount (a fresh event time, as a naive retry would stamp). It must not count.
      const retry = await javaProduce(topic, SEED_WALLET, deposits.codec.encode({ depositId: "ext-1", walletId: SEED_WALLET, amountMinor: 123_456n, eventTimeMs: Date.now() }));
      expect(retry.partition).toBe(seed.partition);
      expect(retry.offset).toBeGreaterThan(seed.offset);

      // Barrier: a later deposit on the same wallet and topic (same partition, so
      // processed after the retry). Once it shows, the retry has been handled, and must
      // not have counted.
      const barrier = await javaProduce(topic, SEED_WALLET, deposits.codec.encode({ depositId: "ext-barrier", walletId: SEED_WALLET, amountMinor: 100n, eventTimeMs: Date.now() }));
      expect(barrier.partition).toBe(seed.partition);
      expect(barrier.offset).toBeGreaterThan(retry.offset);
      await expectBalance(dev.base, SEED_WALLET, "1235.56", 2);

      dev.proc.kill("SIGTERM");
      const code = await Promise.race([dev.proc.exited, Bun.sleep(20_000).then(() => "timeout" as const)]);
      expect(code).toBe(0);
    } finally {
      if (dev.proc.exitCode === null) {
        dev.proc.kill("SIGKILL");
        await dev.proc.exited;
      }
      data.cleanup();
    }
  }, 120_000);
}

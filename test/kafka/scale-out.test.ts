// Scale-out on a real Kafka broker: two processor instances share the groups; one is
// killed with SIGKILL mid-stream and the survivor must take its partitions, restore
// them from the changelogs and end equal to the oracle. Then a new instance with an
// empty DATA_DIR must rebuild its state from the changelogs alone.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { formatMinor } from "../../src/money.js";
import { kafkaOrSkip, uniquePrefix } from "../kafka-broker.js";
import { eventually, heldPartitions, spawnApi, spawnProcessor, tempDataDir, type ProcessorProcess } from "../support.js";

const brokers = await kafkaOrSkip("scale-out on Kafka");

type Instance = ProcessorProcess;
const startProcessor = spawnProcessor;

/** Partitions an instance restored, per group, from its "restored partitions" lines. */
function restored(output: string, group: string): Set<number> {
  const partitions = new Set<number>();
  for (const match of output.matchAll(new RegExp(`\\[${group}\\] restored partitions ([\\d,]+) from (\\d+) changelog records`, "g"))) {
    for (const p of match[1]!.split(",")) partitions.add(Number(p));
  }
  return partitions;
}

const WALLETS = 60;
const wallet = (i: number) => `scale-${i}`;

/** The oracle: exact sums in cents, and which wallets breach 10,000.00 in 2 minutes. */
class Oracle {
  readonly cents = new Map<string, bigint>();
  readonly counts = new Map<string, number>();
  add(walletId: string, cents: bigint) {
    this.cents.set(walletId, (this.cents.get(walletId) ?? 0n) + cents);
    this.counts.set(walletId, (this.counts.get(walletId) ?? 0) + 1);
  }
  // Every deposit in this test is accepted within seconds, so one window holds all of
  // a wallet's deposits and it breaches exactly when its total passes 10,000.00.
  flagged = (walletId: string) => (this.cents.get(walletId) ?? 0n) > 1_000_000n;
}

async function post(base: string, walletId: string, cents: bigint, key: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      const res = await fetch(`${base}/deposit`, {
        method: "POST",
        headers: { "idempotency-key": key },
        body: JSON.stringify({ wallet_id: walletId, amount: formatMinor(cents) }),
      });
      // 202 pending, or 200 for a retry of a key already decided.
      if (res.status === 202 || res.status === 200) return;
      throw new Error(`${res.status} ${await res.text()}`);
    } catch (error) {
      // A retry with the same key is safe: the deposit counts once.
      if (attempt >= 5) throw error;
      await Bun.sleep(200);
    }
  }
}

async function expectOracle(base: string, oracle: Oracle): Promise<void> {
  await eventually(async () => {
    for (let i = 0; i < WALLETS; i++) {
      const id = wallet(i);
      const text = await (await fetch(`${base}/check/${id}`)).text();
      const body = JSON.parse(text) as { deposit_count: number; above_threshold: boolean };
      expect(text).toContain(`"balance":${formatMinor(oracle.cents.get(id) ?? 0n)},`);
      expect(body.deposit_count).toBe(oracle.counts.get(id) ?? 0);
      expect(body.above_threshold).toBe(oracle.flagged(id));
    }
  }, 60_000, 250);
}

describe.skipIf(!brokers)("scale-out on Kafka", () => {
  const env = { BROKERS: brokers ?? "", TOPIC_PREFIX: uniquePrefix("scale") };
  const apiData = tempDataDir();
  const oracle = new Oracle();
  let api: { proc: Bun.Subprocess; base: string };
  const instances: Instance[] = [];
  let sent = 0;

  async function stream(count: number, onSent?: (n: number) => void): Promise<void> {
    let next = 0;
    await Promise.all(Array.from({ length: 4 }, async () => {
      while (next < count) {
        const n = sent++;
        next++;
        const id = wallet(n % WALLETS);
        // Some wallets get large deposits, so flags move through the pipeline too.
        const cents = n % WALLETS < 10 ? 300_000n + BigInt(n) : 1_000n + BigInt(n % 997);
        await post(api.base, id, cents, `scale-${n}`);
        oracle.add(id, cents);
        onSent?.(n);
      }
    }));
  }

  beforeAll(async () => {
    api = await spawnApi("api", apiData.dir, env);
    instances.push(startProcessor(env), startProcessor(env));
    await eventually(async () => expect((await fetch(`${api.base}/ready`)).status).toBe(200), 60_000, 200);
  });

  afterAll(async () => {
    for (const i of instances) if (i.proc.exitCode === null) i.proc.kill("SIGKILL");
    api.proc.kill("SIGTERM");
    await api.proc.exited;
    for (const i of instances) i.cleanup();
    apiData.cleanup();
  });

  test("the survivor of a SIGKILL takes its partitions, restores them, and matches the oracle", async () => {
    // Both instances hold partitions of the balance group before the kill.
    await eventually(() => {
      expect(heldPartitions(instances[0]!.output(), "balance").size).toBeGreaterThan(0);
      expect(heldPartitions(instances[1]!.output(), "balance").size).toBeGreaterThan(0);
    }, 60_000, 200);
    const [victim, survivor] = instances as [Instance, Instance];
    const heldBySurvivor = heldPartitions(survivor.output(), "balance");
    const victimHeld = heldPartitions(victim.output(), "balance");
    let killed = false;
    await stream(600, (n) => {
      if (n === 200 && !killed) {
        killed = true;
        victim.proc.kill("SIGKILL");
      }
    });
    expect(await victim.proc.exited).not.toBe(0);
    await expectOracle(api.base, oracle);
    // The survivor now holds every partition, having restored the victim's.
    expect(heldBySurvivor.size).toBeLessThan(12);
    expect(heldPartitions(survivor.output(), "balance").size).toBe(12);
    expect([...victimHeld].every((p) => !heldBySurvivor.has(p))).toBe(true);
  }, 180_000);

  test("a new instance with an empty DATA_DIR rebuilds its state from the changelogs alone", async () => {
    const survivor = instances[1]!;
    survivor.proc.kill("SIGTERM");
    expect(await survivor.proc.exited).toBe(0);
    const fresh = startProcessor(env);
    instances.push(fresh);
    await eventually(() => expect(restored(fresh.output(), "balance").size).toBe(12), 60_000, 200);
    const records = [...fresh.output().matchAll(/\[balance\] restored partitions [\d,]+ from (\d+) changelog records/g)].reduce((sum, m) => sum + Number(m[1]), 0);
    expect(records).toBeGreaterThan(0);
    // A client retry of a deposit applied before the handover must not count again.
    await post(api.base, wallet(0), 300_000n, "scale-0");
    await stream(120);
    await expectOracle(api.base, oracle);
  }, 180_000);
});

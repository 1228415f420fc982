// How the bench knows, from outside, that a process has applied everything before a
// point: one sentinel deposit per partition, above the threshold, written after the
// rest. Each group handles a partition in order, so once every sentinel's wallet shows
// deposit_count 1 in GET /check (the collector) and above_threshold true (the
// detector flagged it and the flagger recorded the flag), all three groups are past
// everything written before.
import { partitioner, partitions, thresholdMinor, writeDeposits, type LogTarget } from "./product.js";
import { until, type Child, type Server } from "./proc.js";

const sentinelAmountMinor = thresholdMinor + 1n;
const sentinelAmount = `${sentinelAmountMinor / 100n}.${String(sentinelAmountMinor % 100n).padStart(2, "0")}`;
/** A backlog of 1,000,000 wallets on Kafka takes minutes to apply on one core. */
const drainTimeoutMs = 30 * 60_000;
const pollIntervalMs = 50;

/** One fresh wallet per partition, named after `tag` (unique per use). */
export async function sentinelWallets(tag: string): Promise<string[]> {
  const partitionOf = await partitioner();
  const wallets = new Array<string | undefined>(partitions);
  for (let n = 0; wallets.includes(undefined); n++) {
    const wallet = `sentinel-${tag}-${n}`;
    wallets[partitionOf(wallet)] ??= wallet;
  }
  return wallets as string[];
}

/** Writes the sentinels straight to the log, after a backlog written the same way. */
export function writeSentinels(target: LogTarget, dataDir: string, wallets: string[]): Promise<void> {
  return writeDeposits(target, dataDir, wallets.length, (i) => ({ depositId: `${wallets[i]}-d`, walletId: wallets[i]!, amountMinor: sentinelAmountMinor }));
}

/** Posts the sentinels through the API, after deposits posted the same way. */
async function postSentinels(base: string, wallets: string[]): Promise<void> {
  for (const wallet of wallets) {
    const res = await fetch(`${base}/deposit`, { method: "POST", body: JSON.stringify({ wallet_id: wallet, amount: sentinelAmount }) });
    if (res.status !== 202) throw new Error(`sentinel deposit to ${wallet}: ${res.status} ${await res.text()}`);
  }
}

interface Check {
  deposit_count: number;
  above_threshold: boolean;
}

async function applied(base: string, wallet: string): Promise<boolean> {
  const res = await fetch(`${base}/check/${encodeURIComponent(wallet)}`);
  if (res.status !== 200) throw new Error(`GET /check/${wallet}: ${res.status} ${await res.text()}`);
  const check = (await res.json()) as Check;
  if (check.deposit_count > 1) throw new Error(`sentinel ${wallet} counted ${check.deposit_count} times`);
  return check.deposit_count === 1 && check.above_threshold;
}

/** Waits until every sentinel shows in GET /check at `base`, applied and flagged. */
export async function awaitSentinels(base: string, wallets: string[], children: Child[]): Promise<void> {
  let pending = wallets;
  await until("the sentinels to be applied and flagged", async () => {
    const done = await Promise.all(pending.map((w) => applied(base, w)));
    pending = pending.filter((_, i) => !done[i]);
    return pending.length === 0;
  }, children, drainTimeoutMs, pollIntervalMs);
}

let drains = 0;

/** Waits until a running `dev` has applied everything posted to it so far. */
export async function drain(server: Server, tag: string): Promise<void> {
  const wallets = await sentinelWallets(`${tag}-drain${drains++}`);
  await postSentinels(server.base, wallets);
  await awaitSentinels(server.base, wallets, [server]);
}

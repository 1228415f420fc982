// Restore on Kafka: a processor with an empty DATA_DIR rebuilding every partition of
// every group from the changelogs, and the memory it then holds.
import { kafkaTarget, type Context } from "../context.js";
import { loadCore, serverCore, serverPlacement, until } from "../proc.js";
import { groups, partitions, restoredFrom, startProcessor, startServer, writeDeposits, type LogTarget } from "../product.js";
import { formatNumber, type Row, type Target } from "../result.js";
import { awaitSentinels, sentinelWallets, writeSentinels } from "../sentinels.js";

const restoreTarget: Target = { of: "value", op: "<", value: 15 };
/** Restoring 1,000,000 wallets is expected in seconds; this only bounds a hang. */
const restoreTimeoutMs = 10 * 60_000;
const mib = 2 ** 20;

/** Writes one deposit for each of `wallets` wallets, then the sentinels; returns the sentinels. */
export async function writeOnePerWallet(target: LogTarget, dataDir: string, wallets: number, tag: string): Promise<string[]> {
  await writeDeposits(target, dataDir, wallets, (i) => ({ depositId: `${tag}-${i}`, walletId: `${tag}-w${i}`, amountMinor: 1_234n }));
  const sentinels = await sentinelWallets(tag);
  await writeSentinels(target, dataDir, sentinels);
  return sentinels;
}

export interface FreshRestore {
  seconds: number;
  /** Changelog records the processor says it restored. */
  records: number;
  rssBytes: number;
}

/** Times a new processor on an empty `dataDir` until it has restored every partition of every group; then stops it. */
export async function timeFreshRestore(target: LogTarget, dataDir: string, core?: number): Promise<FreshRestore> {
  const started = performance.now();
  const fresh = startProcessor(target, dataDir, core);
  try {
    const allRestored = () => [...restoredFrom(fresh.output()).partitions.values()].every((held) => held.size === partitions);
    await until(`all ${partitions} partitions of ${groups.join(", ")} to be restored`, allRestored, [fresh], restoreTimeoutMs);
    const seconds = (performance.now() - started) / 1000;
    const rssBytes = await fresh.rssBytes();
    fresh.assertRunning();
    return { seconds, records: restoredFrom(fresh.output()).records, rssBytes };
  } finally {
    await fresh.stop();
  }
}

/** One processor applies the deposits (read back through an `api`), then stops; seconds it took. */
async function applyWithOneProcessor(ctx: Context, target: LogTarget, sentinels: string[], apiDir: string): Promise<number> {
  const api = await startServer("api", target, apiDir, loadCore);
  try {
    const started = performance.now();
    const first = startProcessor(target, ctx.tempDir("restore-first"), serverCore);
    try {
      await awaitSentinels(api.base, sentinels, [api, first]);
      return (performance.now() - started) / 1000;
    } finally {
      // A graceful stop: its last batch committed and in the changelogs.
      await first.stop();
    }
  } finally {
    await api.stop();
  }
}

export async function restore(ctx: Context): Promise<Row[]> {
  const wallets = ctx.sizes.restoreWallets;
  const target = kafkaTarget(ctx, "restore");
  const apiDir = ctx.tempDir("restore-api");
  const sentinels = await writeOnePerWallet(target, apiDir, wallets, `${ctx.tag}-restore`);
  const applySeconds = await applyWithOneProcessor(ctx, target, sentinels, apiDir);
  const fresh = await timeFreshRestore(target, ctx.tempDir("restore-fresh"), serverCore);
  const setup = `${formatNumber(wallets)} wallets, one deposit each, written to Kafka and applied by a first \`processor\` (in ${formatNumber(applySeconds)} s), which is then stopped`;
  return [
    {
      id: "restore",
      measure: "Restore of every partition from the changelogs, Kafka",
      value: fresh.seconds,
      unit: "s",
      target: restoreTarget,
      details: `${formatNumber(wallets)} wallets, ${formatNumber(fresh.records)} changelog records; applying them first took ${formatNumber(applySeconds)} s`,
      how: `${setup}. A new \`processor\` with an empty DATA_DIR ${serverPlacement}, timed from its start until its "[<group>] restored partitions ..." lines cover all ${partitions} partitions of the three groups.`,
    },
    {
      id: "restore-rss",
      measure: `RSS of the processor restored with ${formatNumber(wallets)} wallets`,
      value: fresh.rssBytes / mib,
      unit: "MiB",
      details: `${formatNumber(((fresh.rssBytes / mib) * 1_000_000) / wallets)} MiB per 1M wallets if it all grew with the wallets (it does not: part is the process itself)`,
      how: "VmRSS from /proc/<pid>/status of the restored processor, right after its restore.",
    },
  ];
}

// `npm run bench:restore`: rebalance and restore on Kafka for WALLETS wallets (default
// 100,000), one deposit each, measured from outside as bench/run.ts measures (its
// CLIs, its HTTP API, its log lines; BENCH_REPO works here too). Uses BROKERS, or
// starts scripts/kafka.sh. Prints:
// - how long two processor instances take to apply the deposits;
// - how long after a SIGKILL of one of them the survivor has restored the victim's
//   partitions from the changelogs (failure detection, rebalance and restore);
// - how long a new instance with an empty DATA_DIR takes to restore every partition
//   of every group from the changelogs alone.
import { tempDirs } from "./context.js";
import { kafkaBroker } from "./kafka.js";
import { until, type Child } from "./proc.js";
import { groups, heldPartitions, partitions, restoredFrom, startProcessor, startServer, type LogTarget } from "./product.js";
import { awaitSentinels } from "./sentinels.js";
import { timeFreshRestore, writeOnePerWallet } from "./suites/restore.js";

const wallets = Number(process.env.WALLETS ?? "100000");
/** Failure detection (the product's 6 s session timeout), rebalance and restore; this only bounds a hang. */
const takeoverTimeoutMs = 10 * 60_000;
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const count = (n: number) => n.toLocaleString("en-US");

/** Kills `victim` and times until `survivor` holds every partition again; returns the records it restored meanwhile. */
async function killAndTakeOver(victim: Child, survivor: Child): Promise<{ ms: number; records: number }> {
  await until("the two instances to split the partitions", () => groups.every((g) => heldPartitions(survivor.output(), g).size < partitions && heldPartitions(victim.output(), g).size > 0), [victim, survivor], takeoverTimeoutMs);
  const before = survivor.output().length;
  const killedAt = performance.now();
  await victim.kill();
  await until("the survivor to restore the victim's partitions", () => groups.every((g) => heldPartitions(survivor.output(), g).size === partitions), [survivor], takeoverTimeoutMs);
  return { ms: performance.now() - killedAt, records: restoredFrom(survivor.output().slice(before)).records };
}

async function measure(target: LogTarget, tempDir: (label: string) => string): Promise<void> {
  const apiDir = tempDir("restore-api");
  const produceStart = performance.now();
  const sentinels = await writeOnePerWallet(target, apiDir, wallets, `restore-${Date.now().toString(36)}`);
  console.log(`restore bench: ${count(wallets)} wallets, one deposit each, produced in ${seconds(performance.now() - produceStart)}`);

  // Two instances with empty DATA_DIRs share the work; an api reads the sentinels back.
  const api = await startServer("api", target, apiDir);
  const applyStart = performance.now();
  const victim = startProcessor(target, tempDir("victim"));
  const survivor = startProcessor(target, tempDir("survivor"));
  try {
    await awaitSentinels(api.base, sentinels, [api, victim, survivor]);
    console.log(`two instances applied them (three groups each) in ${seconds(performance.now() - applyStart)}`);
    await api.stop();
    const takeover = await killAndTakeOver(victim, survivor);
    console.log(`after a SIGKILL of one of two instances, the survivor had restored the victim's partitions (${count(takeover.records)} changelog records) ${seconds(takeover.ms)} later, failure detection within the session timeout included`);
  } finally {
    await Promise.all([api.stop(), victim.stop(), survivor.stop()]);
  }

  // A new instance with an empty DATA_DIR, alone: everything from the changelogs.
  const fresh = await timeFreshRestore(target, tempDir("fresh"));
  console.log(`a new instance with an empty DATA_DIR restored all ${partitions} partitions of ${groups.length} groups (${count(fresh.records)} changelog records) ${seconds(fresh.seconds * 1000)} after it started`);
}

const broker = await kafkaBroker();
if (!("brokers" in broker)) throw new Error(`no Kafka broker: ${broker.missing}`);
const dirs = tempDirs();
try {
  await measure({ brokers: broker.brokers, topicPrefix: `bench-restore-${Date.now().toString(36)}.` }, dirs.make);
} finally {
  dirs.removeAll();
  await broker.stop();
}

// `npm run bench:restore`: rebalance-and-restore time on Kafka for WALLETS wallets
// (default 100,000). Uses BROKERS, or starts scripts/kafka.sh. Prints:
// - how long two processor instances take to apply one deposit per wallet;
// - how long after a SIGKILL of one of them the survivor has restored the victim's
//   partitions from the changelogs (failure detection, rebalance and restore);
// - how long a new instance with an empty DATA_DIR takes to restore every partition
//   of every group from the changelogs alone.
import { DEFAULT_KAFKA_OPTIONS, KafkaLog } from "../src/log/kafka.js";
import { depositCodec } from "../src/runtime/codecs.js";
import { GROUP_NAMES, TOPICS, topicSpecs } from "../src/runtime/topology.js";
import { kafkaBrokers, uniquePrefix } from "../test/kafka-broker.js";
import { heldPartitions, spawnProcessor } from "../test/support.js";

const WALLETS = Number(process.env.WALLETS ?? "100000");
const brokers = await kafkaBrokers();
if (!brokers) throw new Error("no Kafka broker: set BROKERS, or install Java and Maven for scripts/kafka.sh");
const env = { BROKERS: brokers, TOPIC_PREFIX: uniquePrefix("restore") };
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;


const startProcessor = () => spawnProcessor(env);

/** Partitions restored so far, per group, and the changelog records read. */
function restores(output: string): { partitions: Map<string, Set<number>>; records: number } {
  const partitions = new Map<string, Set<number>>(GROUP_NAMES.map((g) => [g, new Set<number>()]));
  let records = 0;
  for (const m of output.matchAll(/\[(\w+)\] restored partitions ([\d,]+) from (\d+) changelog records/g)) {
    for (const p of m[2]!.split(",")) partitions.get(m[1]!)?.add(Number(p));
    records += Number(m[3]);
  }
  return { partitions, records };
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 600_000): Promise<number> {
  const start = performance.now();
  while (!(await check())) {
    if (performance.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(50);
  }
  return performance.now() - start;
}

const log = new KafkaLog({ ...DEFAULT_KAFKA_OPTIONS, brokers: brokers.split(","), topicPrefix: env.TOPIC_PREFIX, produceBatchRecordsMax: 5_000 });
await log.ensureTopics(topicSpecs(12));
const produceStart = performance.now();
for (let from = 0; from < WALLETS; from += 5_000) {
  await Promise.all(Array.from({ length: Math.min(5_000, WALLETS - from) }, (_, i) => {
    const walletId = `wallet-${from + i}`;
    const value = depositCodec.encode({ depositId: `d-${from + i}`, walletId, amountMinor: 1_234n, eventTimeMs: Date.now() });
    return log.produce([{ topic: TOPICS.deposits, key: walletId, value }]);
  }));
}
console.log(`restore bench: ${WALLETS.toLocaleString("en-US")} wallets, one deposit each, produced in ${seconds(performance.now() - produceStart)}`);

const total = async (topic: string) => (await log.endOffsets(topic)).reduce((a, b) => a + b, 0);
const lines = (output: string, group: string) =>
  [...output.matchAll(new RegExp(`\\[${group}\\] restored partitions ([\\d,]+) from (\\d+) changelog records`, "g"))].map((m) => ({ partitions: m[1]!.split(",").map(Number), records: Number(m[2]) }));

// Two instances with empty DATA_DIRs share the work.
const victim = startProcessor();
const survivor = startProcessor();
// Each deposit leaves two changelog records per group: its applied id and its row.
const applyMs = await until("two instances to apply every deposit", async () => (await total(TOPICS.table("balance"))) >= 2 * WALLETS && (await total(TOPICS.table("threshold"))) >= 2 * WALLETS);
console.log(`two instances applied them (three groups each) in ${seconds(applyMs)}`);

// SIGKILL one: the survivor must restore the victim's partitions from the changelogs.
const held = heldPartitions;
await until("the two instances to split the partitions", () => GROUP_NAMES.every((g) => held(survivor.output(), g).size < 12 && held(victim.output(), g).size > 0));
const seenBefore = new Map(GROUP_NAMES.map((g) => [g, lines(survivor.output(), g).length]));
const heldBySurvivor = new Map(GROUP_NAMES.map((g) => [g, held(survivor.output(), g)]));
const killedAt = performance.now();
victim.proc.kill("SIGKILL");
await victim.proc.exited;
const takenOver = () => GROUP_NAMES.map((g) => lines(survivor.output(), g).slice(seenBefore.get(g)!));
await until("the survivor to restore the victim's partitions", () =>
  GROUP_NAMES.every((g, i) => new Set([...heldBySurvivor.get(g)!, ...takenOver()[i]!.flatMap((l) => l.partitions)]).size === 12));
const restoredRecords = takenOver().flat().reduce((sum, l) => sum + l.records, 0);
console.log(`after a SIGKILL of one of two instances, the survivor had restored the victim's partitions (${restoredRecords.toLocaleString("en-US")} changelog records) ${seconds(performance.now() - killedAt)} later, failure detection within the ${DEFAULT_KAFKA_OPTIONS.sessionTimeoutMs / 1000} s session timeout included`);

// A new instance with an empty DATA_DIR, alone: everything from the changelogs.
survivor.proc.kill("SIGTERM");
await survivor.proc.exited;
const fresh = startProcessor();
const freshMs = await until("the fresh instance to restore all partitions", () => GROUP_NAMES.every((g) => new Set(lines(fresh.output(), g).flatMap((l) => l.partitions)).size === 12));
const freshRecords = GROUP_NAMES.flatMap((g) => lines(fresh.output(), g)).reduce((sum, l) => sum + l.records, 0);
console.log(`a new instance with an empty DATA_DIR restored all 12 partitions of ${GROUP_NAMES.length} groups (${freshRecords.toLocaleString("en-US")} changelog records) ${seconds(freshMs)} after it started`);

fresh.proc.kill("SIGTERM");
await fresh.proc.exited;
for (const i of [victim, survivor, fresh]) i.cleanup();
await log.close();

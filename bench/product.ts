// The product as the bench sees it, all in this one module: which checkout, how its
// processes are started and configured, what they print, and the one in-process
// shortcut (writing a backlog straight to the log). If the product renames any of
// this, only this file changes. BENCH_REPO=<dir> measures another checkout.
import { join, resolve } from "node:path";
import { spawnChild, spawnServer, type Child, type Server } from "./proc.js";

export const productRepo = resolve(process.env.BENCH_REPO || join(import.meta.dir, ".."));

/** Partitions of every topic (PARTITIONS); sentinels need one wallet per partition. */
export const partitions = 12;
/** The processor groups, as they name themselves in their log lines. */
export const groups = ["balance", "threshold", "flagger"] as const;
/** A single deposit above this (THRESHOLD_AMOUNT's default) is flagged. */
export const thresholdMinor = 1_000_000n;
/** WRITES_IN_FLIGHT_MAX's default: writes in flight past which the API answers 503 overloaded. */
export const writesInFlightMaxDefault = 1_024;

/** Where a process's log is: `brokers` empty means the embedded log in its DATA_DIR. */
export interface LogTarget {
  brokers: string;
  /** Topics and groups of one run on a shared broker; empty on the embedded log. */
  topicPrefix: string;
}

export const embedded: LogTarget = { brokers: "", topicPrefix: "" };

type ProductCli = "dev" | "api" | "processor";

function env(target: LogTarget, dataDir: string): Record<string, string> {
  return { DATA_DIR: dataDir, PORT: "0", PARTITIONS: String(partitions), BROKERS: target.brokers, TOPIC_PREFIX: target.topicPrefix };
}

/** Settings of the API a measure changes from their defaults. */
export interface ApiSettings {
  /** WRITES_IN_FLIGHT_MAX: writes in flight past which a write is refused with 503 overloaded. */
  writesInFlightMax?: number;
}

function apiEnv(settings: ApiSettings): Record<string, string> {
  return settings.writesInFlightMax === undefined ? {} : { WRITES_IN_FLIGHT_MAX: String(settings.writesInFlightMax) };
}

const command = (cli: ProductCli) => [process.execPath, join(productRepo, "src/cli", `${cli}.ts`)];

/** `dev` (API and all processors) or `api` (API and its views), once it listens. */
export function startServer(cli: "dev" | "api", target: LogTarget, dataDir: string, core?: number, settings: ApiSettings = {}): Promise<Server> {
  return spawnServer(cli, command(cli), { cwd: productRepo, env: { ...env(target, dataDir), ...apiEnv(settings) }, core });
}

/** `processor` (all three groups); it serves nothing, so it is running once spawned. */
export function startProcessor(target: LogTarget, dataDir: string, core?: number): Child {
  return spawnChild("processor", command("processor"), { cwd: productRepo, env: env(target, dataDir), core });
}

export interface Restored {
  /** Partitions restored so far, per group. */
  partitions: Map<string, Set<number>>;
  records: number;
}

/** Reads a processor's "[<group>] restored partitions 0,1,... from N changelog records in M ms" lines. */
export function restoredFrom(output: string): Restored {
  const partitionsByGroup = new Map<string, Set<number>>(groups.map((g) => [g, new Set<number>()]));
  let records = 0;
  for (const m of output.matchAll(/\[(\w+)\] restored partitions ([\d,]+) from (\d+) changelog records/g)) {
    for (const p of m[2]!.split(",")) partitionsByGroup.get(m[1]!)?.add(Number(p));
    records += Number(m[3]);
  }
  return { partitions: partitionsByGroup, records };
}

/**
 * The partitions of `group` a processor holds, replayed from its output: it logs
 * "[<group>] restored partitions ..." when it takes partitions and "[<group>] revoked
 * partitions ..." when it loses them.
 */
export function heldPartitions(output: string, group: string): Set<number> {
  const held = new Set<number>();
  for (const m of output.matchAll(new RegExp(`\\[${group}\\] (restored|revoked) partitions ([\\d,]+)`, "g"))) {
    for (const p of m[2]!.split(",").map(Number)) {
      if (m[1] === "restored") held.add(p);
      else held.delete(p);
    }
  }
  return held;
}

export interface BacklogDeposit {
  depositId: string;
  walletId: string;
  amountMinor: bigint;
}

/** What writeDeposits needs from the product's modules. */
interface ProductModules {
  loadConfig(env: Record<string, string>): unknown;
  openLog(config: unknown): Promise<{ produce(records: { topic: string; key: string; value: Uint8Array }[]): Promise<unknown>; close(): Promise<void> }>;
  encodeDeposit(deposit: BacklogDeposit & { eventTimeMs: number }): Uint8Array;
  depositsTopic: string;
  partitionForKey(key: string, partitions: number): number;
}

/**
 * The product's modules, from BENCH_REPO. Runtime v2 moved them (src/log/open.ts,
 * src/topics/deposits.ts); the older layout (src/service.ts, src/runtime/codecs.ts and
 * topology.ts) is still read, so a checkout from before it can be measured in the same
 * run as the current one.
 */
async function importProduct(): Promise<ProductModules> {
  const from = (path: string) => import(join(productRepo, path));
  const [config, murmur2] = await Promise.all([from("src/config.ts"), from("src/log/murmur2.ts")]);
  if (await Bun.file(join(productRepo, "src/topics/deposits.ts")).exists()) {
    const [open, topics] = await Promise.all([from("src/log/open.ts"), from("src/topics/deposits.ts")]);
    return {
      loadConfig: config.loadConfig,
      openLog: (c) => open.openLog(c, "cli"),
      encodeDeposit: (d) => topics.deposits.codec.encode(d),
      depositsTopic: topics.deposits.name,
      partitionForKey: murmur2.partitionForKey,
    };
  }
  const [service, codecs, topology] = await Promise.all(["src/service.ts", "src/runtime/codecs.ts", "src/runtime/topology.ts"].map(from));
  return {
    loadConfig: config.loadConfig,
    openLog: service.openLog,
    encodeDeposit: (d) => codecs.depositCodec.encode(d),
    depositsTopic: topology.TOPICS.deposits,
    partitionForKey: murmur2.partitionForKey,
  };
}

/** Records per produce call; the embedded log commits up to 5,000 in one transaction. */
const produceChunkRecords = 5_000;
/** Produce calls awaited at once: 20,000 records, under the Kafka log's 50,000-record queue. */
const produceChunksInFlightMax = 4;

/**
 * Writes `count` deposits (the i-th from `depositAt(i)`) straight to the log, as a
 * trusted producer would, without HTTP: the product's own log client and codec. All
 * get the same event time, now. Resolves once every record is durably stored.
 */
export async function writeDeposits(target: LogTarget, dataDir: string, count: number, depositAt: (i: number) => BacklogDeposit): Promise<void> {
  const product = await importProduct();
  const log = await product.openLog(product.loadConfig(env(target, dataDir)));
  try {
    const eventTimeMs = Date.now();
    const inFlight = new Set<Promise<unknown>>();
    for (let from = 0; from < count; from += produceChunkRecords) {
      const records = [];
      for (let i = from; i < Math.min(count, from + produceChunkRecords); i++) {
        const deposit = depositAt(i);
        records.push({ topic: product.depositsTopic, key: deposit.walletId, value: product.encodeDeposit({ ...deposit, eventTimeMs }) });
      }
      const produced: Promise<unknown> = log.produce(records).finally(() => inFlight.delete(produced));
      inFlight.add(produced);
      if (inFlight.size >= produceChunksInFlightMax) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
  } finally {
    await log.close();
  }
}

/** The product's partitioner (Kafka's murmur2), to aim a wallet at a partition. */
export async function partitioner(): Promise<(walletId: string) => number> {
  const { partitionForKey } = await importProduct();
  return (walletId) => partitionForKey(walletId, partitions);
}

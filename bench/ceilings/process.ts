// Ceiling of processing: what raw bun:sqlite does with a backlog of deposits when
// nothing else is asked of it. N protobuf Deposit records are written to a log table
// first (untimed); then, timed, they are read in batches, each decoded, and
// per-wallet balance rows upserted, one transaction per batch. The product's three
// groups do this and more (ids kept for exactly-once, changelogs, the detector's
// window, flags), so its ratio to this is the cost of those.
//
// DATA_DIR=<dir> bun bench/ceilings/process.ts --records 300000 --wallets 30000
// prints one line: {"records":N,"seconds":S}

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Database } from "bun:sqlite";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { DepositSchema } from "../../src/gen/depositaja/v1/events_pb.js";

/** Records read and applied per transaction: the product's replay batch size. */
const batchRecordsMax = 2_000;
/** Records written per transaction while preparing the backlog. */
const writeBatchRecordsMax = 10_000;

const { values } = parseArgs({ options: { records: { type: "string" }, wallets: { type: "string" } } });
const records = Number(values.records);
const wallets = Number(values.wallets);
if (!(records > 0 && wallets > 0)) throw new Error("usage: process.ts --records N --wallets W");

const dataDir = process.env.DATA_DIR || mkdtempSync(join(tmpdir(), "bench-process-"));

/** WAL as the product opens its databases: the log fsyncs fully, the state does not need to. */
function open(file: string, synchronous: "FULL" | "NORMAL"): Database {
  const db = new Database(join(dataDir, file), { create: true, strict: true });
  db.run("PRAGMA journal_mode = WAL");
  db.run(`PRAGMA synchronous = ${synchronous}`);
  return db;
}

const log = open("log.db", "FULL");
log.run("CREATE TABLE records (seq INTEGER PRIMARY KEY, key TEXT NOT NULL, value BLOB NOT NULL)");
const state = open("state.db", "NORMAL");
state.run("CREATE TABLE balances (wallet_id TEXT PRIMARY KEY, balance_minor INTEGER NOT NULL, deposit_count INTEGER NOT NULL)");

function writeBacklog(): void {
  const insert = log.prepare("INSERT INTO records (seq, key, value) VALUES (?, ?, ?)");
  const eventTime = timestampFromMs(Date.now());
  for (let from = 0; from < records; from += writeBatchRecordsMax) {
    log.transaction(() => {
      for (let i = from; i < Math.min(records, from + writeBatchRecordsMax); i++) {
        const walletId = `w${i % wallets}`;
        const deposit = create(DepositSchema, { depositId: `d${i}`, walletId, amountMinor: BigInt(100 + (i % 9_900)), eventTime });
        insert.run(i, walletId, toBinary(DepositSchema, deposit));
      }
    })();
  }
}

function processBacklog(): void {
  const read = log.prepare<{ seq: number; value: Uint8Array }, [number, number]>("SELECT seq, value FROM records WHERE seq >= ? ORDER BY seq LIMIT ?");
  const upsert = state.prepare(
    "INSERT INTO balances (wallet_id, balance_minor, deposit_count) VALUES (?, ?, 1) " +
      "ON CONFLICT (wallet_id) DO UPDATE SET balance_minor = balance_minor + excluded.balance_minor, deposit_count = deposit_count + 1",
  );
  let next = 0;
  for (;;) {
    const batch = read.all(next, batchRecordsMax);
    if (batch.length === 0) return;
    state.transaction(() => {
      for (const row of batch) {
        const deposit = fromBinary(DepositSchema, row.value);
        upsert.run(deposit.walletId, deposit.amountMinor);
      }
    })();
    next = batch[batch.length - 1]!.seq + 1;
  }
}

writeBacklog();
const started = performance.now();
processBacklog();
const seconds = (performance.now() - started) / 1000;
const applied = state.query<{ n: number }, []>("SELECT sum(deposit_count) AS n FROM balances").get()!.n;
if (applied !== records) throw new Error(`applied ${applied} deposits, expected ${records}`);
console.log(JSON.stringify({ records, seconds }));

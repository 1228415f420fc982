// The ceilings: tiny standalone programs in bench/ceilings/ that do the least the
// product's work could be done with, measured in the same run and the same way as the
// product, each once per run however many figures are compared with it. They always
// come from this checkout, whichever checkout BENCH_REPO points the product at.
import { join } from "node:path";
import { loadDetails, throughput, type Kind } from "./http-load.js";
import { lastJsonLine, runProgram, serverCore, spawnServer } from "./proc.js";
import { formatNumber, type CeilingResult } from "./result.js";
import type { Sizes } from "./sizes.js";

const program = (name: string) => [process.execPath, join(import.meta.dir, "ceilings", `${name}.ts`)];

export type HttpCeiling = "bare-post" | "durable-post" | "bare-get";

const httpCeilings: Record<HttpCeiling, { kind: Kind; how: string }> = {
  "bare-post": { kind: "post", how: "bench/ceilings/bare-post.ts: a bare Bun.serve that parses the same JSON body and answers 202 with a small JSON." },
  "durable-post": {
    kind: "post",
    how: "bench/ceilings/durable-post.ts: bare-post plus one SQLite insert per request (WAL, synchronous=FULL), requests of one event-loop tick committed in one transaction, each answered after its commit.",
  },
  "bare-get": { kind: "get", how: "bench/ceilings/bare-get.ts: a bare Bun.serve answering GET with a small JSON of the shape of /check." },
};

interface RecordsJson {
  records: number;
  seconds: number;
}

export class Ceilings {
  readonly results: CeilingResult[] = [];
  private readonly measured = new Map<string, Promise<CeilingResult>>();

  constructor(private readonly sizes: Sizes, private readonly tempDir: (label: string) => string) {}

  private once(id: string, measure: () => Promise<Omit<CeilingResult, "id">>): Promise<CeilingResult> {
    let result = this.measured.get(id);
    if (!result) {
      console.log(`ceiling ${id} ...`);
      result = measure().then((r) => {
        const ceiling = { id, ...r };
        this.results.push(ceiling);
        console.log(`ceiling ${id}: ${formatNumber(ceiling.value)} ${ceiling.unit}`);
        return ceiling;
      });
      this.measured.set(id, result);
    }
    return result;
  }

  /** Requests per second of a ceiling server on the server core, `connections` wrk connections. */
  http(name: HttpCeiling, connections: number): Promise<CeilingResult> {
    return this.once(`${name} (${connections} connections)`, async () => {
      const server = await spawnServer(name, program(name), { cwd: import.meta.dir, env: { PORT: "0", DATA_DIR: this.tempDir(name) }, core: serverCore });
      try {
        const load = { kind: httpCeilings[name].kind, connections, wallets: this.sizes.walletsCycled };
        const reps = { warmupSeconds: this.sizes.warmupDurationSeconds, seconds: this.sizes.ingestDurationSeconds, count: this.sizes.repetitions };
        const t = await throughput(server.base, load, reps);
        server.assertRunning();
        return { value: t.median.perSecond, unit: "req/s", details: loadDetails(t), how: httpCeilings[name].how };
      } finally {
        await server.stop();
      }
    });
  }

  /** Records per second of raw bun:sqlite decoding and upserting a backlog, on the server core. */
  process(records: number, wallets: number): Promise<CeilingResult> {
    return this.once(`process (${formatNumber(records)} records)`, async () => {
      const stdout = await runProgram("process ceiling", [...program("process"), "--records", String(records), "--wallets", String(wallets)], { cwd: import.meta.dir, env: { DATA_DIR: this.tempDir("process") }, core: serverCore });
      const r = lastJsonLine<RecordsJson>(stdout);
      return {
        value: r.records / r.seconds,
        unit: "records/s",
        details: `${formatNumber(r.records)} records over ${formatNumber(wallets)} wallets in ${formatNumber(r.seconds)} s`,
        how: "bench/ceilings/process.ts: protobuf Deposit records in a SQLite table (written first, untimed), then timed: read 2,000 at a time, each decoded, per-wallet balance rows upserted, one transaction per batch.",
      };
    });
  }

  /** Records per second @platformatic/kafka consumes from a 12-partition topic, on the server core. */
  kafkaConsume(brokers: string, records: number, wallets: number): Promise<CeilingResult> {
    return this.once(`kafka-consume (${formatNumber(records)} records)`, async () => {
      const stdout = await runProgram("kafka-consume ceiling", [...program("kafka-consume"), "--records", String(records), "--wallets", String(wallets)], { cwd: import.meta.dir, env: { BROKERS: brokers }, core: serverCore });
      const r = lastJsonLine<RecordsJson>(stdout);
      return {
        value: r.records / r.seconds,
        unit: "records/s",
        details: `${formatNumber(r.records)} records in ${formatNumber(r.seconds)} s, group join included`,
        how: "bench/ceilings/kafka-consume.ts: a @platformatic/kafka Consumer with the product's options reading N pre-produced Deposit records from a 12-partition topic, no processing; timed from joining the group.",
      };
    });
  }
}

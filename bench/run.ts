// `bun run bench`: measures Depositaja from outside (its CLIs and HTTP API), each
// figure against a ceiling measured in the same run, prints a table, and writes
// bench/results/<date>.json, docs/BENCHMARKS.md and docs/benchmarks.svg.
//
//   bun run bench                  the full run (minutes); exits 3 if a target is missed
//   bun run bench --quick          tiny sizes, no targets judged, outputs under .tmp/bench/ (for CI)
//   bun run bench --only a,b       some suites only; outputs under .tmp/bench/
//   BENCH_REPO=<dir> bun run bench measures the product in another checkout
//
// Any failure (a process that does not start, an unexpected status) exits 1.
import { mkdirSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { Ceilings } from "./ceiling.js";
import { tempDirs, type Context } from "./context.js";
import { generator } from "./http-load.js";
import { kafkaBroker, type Broker } from "./kafka.js";
import { gitCommit, machine } from "./machine.js";
import { pinning } from "./proc.js";
import { productRepo } from "./product.js";
import { consoleTable, markdown, ratioChart } from "./report.js";
import { judge, type Report, type Row } from "./result.js";
import { fullSizes, quickSizes } from "./sizes.js";
import { freshness } from "./suites/freshness.js";
import { ingest, ingestKafka } from "./suites/ingest.js";
import { processing, processingKafka } from "./suites/processing.js";
import { restore } from "./suites/restore.js";

interface Suite {
  name: string;
  kafka: boolean;
  run(ctx: Context): Promise<Row[]>;
}

const suites: Suite[] = [
  { name: "ingest", kafka: false, run: ingest },
  { name: "ingest-kafka", kafka: true, run: ingestKafka },
  { name: "processing", kafka: false, run: processing },
  { name: "processing-kafka", kafka: true, run: processingKafka },
  { name: "freshness", kafka: false, run: freshness },
  { name: "restore-kafka", kafka: true, run: restore },
];

const exitFailure = 1;
const exitTargetMissed = 3;
const harnessRepo = join(import.meta.dir, "..");

function selectSuites(only: string | undefined): Suite[] {
  if (only === undefined) return suites;
  const names = only.split(",").map((n) => n.trim());
  const unknown = names.filter((n) => !suites.some((s) => s.name === n));
  if (unknown.length > 0) throw new Error(`unknown suite ${unknown.join(", ")}; suites: ${suites.map((s) => s.name).join(", ")}`);
  return suites.filter((s) => names.includes(s.name));
}

function commandLine(): string {
  const env = ["BENCH_REPO", "BROKERS"].filter((k) => process.env[k]).map((k) => `${k}=${process.env[k]} `).join("");
  return `${env}bun run bench${process.argv.slice(2).map((a) => ` ${a}`).join("")}`;
}

/** The broker when a selected suite needs one; a loud notice when there is none. */
async function brokerFor(selected: Suite[], notices: string[]): Promise<Broker | undefined> {
  if (!selected.some((s) => s.kafka)) return undefined;
  const broker = await kafkaBroker();
  if ("brokers" in broker) return broker;
  const skipped = selected.filter((s) => s.kafka).map((s) => s.name).join(", ");
  notices.push(`Kafka measures skipped (${skipped}): ${broker.missing}.`);
  console.warn(`\n!!! SKIPPED ${skipped}: no Kafka broker: ${broker.missing} !!!\n`);
  return undefined;
}

function outputPaths(report: Report): { json: string; markdown: string; chart: string } {
  const day = report.date.slice(0, 10);
  // Quick and partial runs must never replace the real report.
  if (report.quick || report.only) {
    const dir = join(harnessRepo, ".tmp", "bench");
    return { json: join(dir, `${day}.json`), markdown: join(dir, "BENCHMARKS.md"), chart: join(dir, "benchmarks.svg") };
  }
  return { json: join(harnessRepo, "bench", "results", `${day}.json`), markdown: join(harnessRepo, "docs", "BENCHMARKS.md"), chart: join(harnessRepo, "docs", "benchmarks.svg") };
}

function write(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
}

async function measure(selected: Suite[], ctx: Context): Promise<Row[]> {
  const rows: Row[] = [];
  for (const suite of selected) {
    if (suite.kafka && !ctx.brokers) continue;
    console.log(`\n== ${suite.name}`);
    const found = await suite.run(ctx);
    for (const row of found) console.log(`${row.measure}: ${row.value.toFixed(2)} ${row.unit}${row.ratio === undefined ? "" : ` (${row.ratio.toFixed(2)}x)`}`);
    rows.push(...found);
  }
  return rows;
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { quick: { type: "boolean" }, only: { type: "string" } } });
  const quick = values.quick ?? false;
  const selected = selectSuites(values.only);
  const date = new Date().toISOString();
  const started = performance.now();
  const sizes = quick ? quickSizes : fullSizes;
  const dirs = tempDirs();
  const notices: string[] = [];
  const pinningText = pinning ? "server process on core 0, load generator on core 1 (taskset -c)" : "none (taskset missing, or fewer than 2 cores)";
  const m = machine();
  console.log(`bench${quick ? " --quick" : ""}: ${m.cores} cores, ${m.cpuModel}, Bun ${m.bun}; product ${productRepo}; load generator ${generator}; pinning ${pinningText}`);

  const broker = await brokerFor(selected, notices);
  const ctx: Context = { sizes, ceilings: new Ceilings(sizes, dirs.make), brokers: broker?.brokers, tag: Date.now().toString(36), tempDir: dirs.make };
  let rows: Row[];
  try {
    rows = await measure(selected, ctx);
  } finally {
    dirs.removeAll();
    await broker?.stop();
  }
  if (!quick) for (const row of rows) row.met = judge(row);

  const report: Report = {
    date,
    quick,
    only: values.only ? selected.map((s) => s.name) : undefined,
    command: commandLine(),
    machine: m,
    // Where the product came from, without this machine's paths.
    productRepo: productRepo === harnessRepo ? "this checkout" : "BENCH_REPO",
    productCommit: gitCommit(productRepo),
    harnessCommit: productRepo === harnessRepo ? undefined : gitCommit(harnessRepo),
    generator,
    pinning: pinningText,
    rows,
    ceilings: ctx.ceilings.results,
    notices,
    durationSeconds: (performance.now() - started) / 1000,
  };
  const paths = outputPaths(report);
  write(paths.json, JSON.stringify(report, null, 2) + "\n");
  write(paths.chart, ratioChart(report));
  const analysis = join(import.meta.dir, "analysis.md");
  write(paths.markdown, markdown(report, basename(paths.chart), (await Bun.file(analysis).exists()) ? await Bun.file(analysis).text() : ""));
  console.log(`\n${consoleTable(report)}\n\nwrote ${paths.json}, ${paths.markdown}, ${paths.chart}`);
  for (const notice of notices) console.warn(`!!! ${notice}`);
  const missed = rows.filter((r) => r.met === false);
  if (missed.length === 0) return 0;
  console.error(`\ntargets not met: ${missed.map((r) => r.measure).join("; ")}`);
  return exitTargetMissed;
}

// Exiting runs the handler in proc.ts that kills any child still running.
process.once("SIGINT", () => process.exit(130));
try {
  process.exit(await main());
} catch (error) {
  console.error(`\nbench failed: ${(error as Error).stack ?? error}`);
  process.exit(exitFailure);
}

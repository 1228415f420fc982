// `bun run bench`: measures Depositaja from outside (its CLIs and HTTP API), each
// figure against a ceiling measured in the same run, prints a table, and writes
// bench/results/<date>.json, docs/BENCHMARKS.md and docs/benchmarks.svg.
//
//   bun run bench                  the full run (minutes); exits 3 if a target is missed
//   bun run bench --quick          tiny sizes, no targets judged, outputs under .tmp/bench/ (for CI)
//   bun run bench --only a,b       some suites only; outputs under .tmp/bench/
//   bun run bench --only overload  overload (minutes; in no run unless named), its own report:
//                                  bench/results/<date>-overload.json, docs/BENCHMARKS-overload.md
//     --overload-seconds S         its open loops S s long (default 60; --quick: 3)
//   BENCH_REPO=<dir> bun run bench measures the product in another checkout
//
// Any failure (a process that does not start, an unexpected status) exits 1.
import { mkdirSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
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
import { fullSizes, quickSizes, type Sizes } from "./sizes.js";
import { freshness } from "./suites/freshness.js";
import { ingest, ingestKafka } from "./suites/ingest.js";
import { overload } from "./suites/overload.js";
import { processing, processingKafka } from "./suites/processing.js";
import { restore } from "./suites/restore.js";

interface Suite {
  name: string;
  kafka: boolean;
  /** Run only when named in --only: it takes too long for every run. */
  named?: boolean;
  run(ctx: Context): Promise<Row[]>;
}

const suites: Suite[] = [
  { name: "ingest", kafka: false, run: ingest },
  { name: "ingest-kafka", kafka: true, run: ingestKafka },
  { name: "processing", kafka: false, run: processing },
  { name: "processing-kafka", kafka: true, run: processingKafka },
  { name: "freshness", kafka: false, run: freshness },
  { name: "restore-kafka", kafka: true, run: restore },
  { name: "overload", kafka: false, named: true, run: overload },
];

const exitFailure = 1;
const exitTargetMissed = 3;
const harnessRepo = join(import.meta.dir, "..");

function selectSuites(only: string | undefined): Suite[] {
  if (only === undefined) return suites.filter((s) => !s.named);
  const names = only.split(",").map((n) => n.trim());
  const unknown = names.filter((n) => !suites.some((s) => s.name === n));
  if (unknown.length > 0) throw new Error(`unknown suite ${unknown.join(", ")}; suites: ${suites.map((s) => s.name).join(", ")}`);
  return suites.filter((s) => names.includes(s.name));
}

/** `sizes` with the overload suite's open loops `seconds` long, when given. */
function withOverloadSeconds(sizes: Sizes, seconds: string | undefined): Sizes {
  if (seconds === undefined) return sizes;
  if (!(Number(seconds) > 0)) throw new Error(`--overload-seconds ${seconds}: a number of seconds above 0`);
  return { ...sizes, overload: { ...sizes.overload, seconds: Number(seconds) } };
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

interface OutputPaths {
  json: string;
  markdown: string;
  chart: string;
  /** The hand-written part appended to the markdown, if the file exists. */
  analysis: string;
}

function outputPaths(report: Report, selected: Suite[]): OutputPaths {
  const day = report.date.slice(0, 10);
  // Suites that run only when named have their own report, beside the full run's.
  if (!report.quick && selected.every((s) => s.named)) {
    const name = selected.map((s) => s.name).join("-");
    return {
      json: join(harnessRepo, "bench", "results", `${day}-${name}.json`),
      markdown: join(harnessRepo, "docs", `BENCHMARKS-${name}.md`),
      chart: join(harnessRepo, "docs", `benchmarks-${name}.svg`),
      analysis: join(import.meta.dir, `analysis-${name}.md`),
    };
  }
  const analysis = join(import.meta.dir, "analysis.md");
  // Quick and partial runs must never replace the real report.
  if (report.quick || report.only) {
    const dir = join(harnessRepo, ".tmp", "bench");
    return { json: join(dir, `${day}.json`), markdown: join(dir, "BENCHMARKS.md"), chart: join(dir, "benchmarks.svg"), analysis };
  }
  return { json: join(harnessRepo, "bench", "results", `${day}.json`), markdown: join(harnessRepo, "docs", "BENCHMARKS.md"), chart: join(harnessRepo, "docs", "benchmarks.svg"), analysis };
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
  const { values } = parseArgs({ options: { quick: { type: "boolean" }, only: { type: "string" }, "overload-seconds": { type: "string" } } });
  const quick = values.quick ?? false;
  const selected = selectSuites(values.only);
  const date = new Date().toISOString();
  const started = performance.now();
  const loadAtStart = loadavg();
  const sizes = withOverloadSeconds(quick ? quickSizes : fullSizes, values["overload-seconds"]);
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
    loadAverage: { start: loadAtStart, end: loadavg() },
  };
  const paths = outputPaths(report, selected);
  write(paths.json, JSON.stringify(report, null, 2) + "\n");
  // A chart of ratios, when some figure has one.
  const chart = report.rows.some((r) => r.ratio !== undefined) ? paths.chart : undefined;
  if (chart) write(chart, ratioChart(report));
  write(paths.markdown, markdown(report, chart && basename(chart), (await Bun.file(paths.analysis).exists()) ? await Bun.file(paths.analysis).text() : ""));
  console.log(`\n${consoleTable(report)}\n\nwrote ${[paths.json, paths.markdown, chart].filter(Boolean).join(", ")}`);
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

// The figures a run produces, as the report and the JSON file show them.
import type { Machine } from "./machine.js";

/** A target on a figure itself, or on its ratio to its ceiling. */
export interface Target {
  of: "ratio" | "value";
  op: ">=" | "<";
  value: number;
}

export interface Row {
  id: string;
  /** What was measured, in a few words. */
  measure: string;
  value: number;
  unit: string;
  ceiling?: { id: string; value: number };
  /** value / ceiling. */
  ratio?: number;
  target?: Target;
  /** Whether the target was met; judged in a full run only. */
  met?: boolean;
  /** Latencies, repetitions and the like, as text. */
  details: string;
  /** How it was measured, for the report. */
  how: string;
}

export interface CeilingResult {
  id: string;
  value: number;
  unit: string;
  details: string;
  how: string;
}

/** A figure compared with a ceiling measured in the same run. */
export function againstCeiling(row: Omit<Row, "ceiling" | "ratio">, ceiling: CeilingResult): Row {
  return { ...row, ceiling: { id: ceiling.id, value: ceiling.value }, ratio: row.value / ceiling.value };
}

export function judge(row: Row): boolean | undefined {
  if (!row.target) return undefined;
  const actual = row.target.of === "ratio" ? row.ratio : row.value;
  if (actual === undefined) throw new Error(`${row.id}: a ratio target without a ceiling`);
  return row.target.op === ">=" ? actual >= row.target.value : actual < row.target.value;
}

/** Numbers as the report prints them: 3 significant digits, thousands separated. */
export function formatNumber(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const digits = Math.abs(n) >= 100 ? 0 : Math.abs(n) >= 10 ? 1 : 2;
  return n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

export function formatTarget(target: Target | undefined, unit: string): string {
  if (!target) return "(report)";
  return target.of === "ratio" ? `${target.op} ${target.value}x` : `${target.op} ${formatNumber(target.value)} ${unit}`;
}

/** Everything one run found, as written to bench/results/<date>.json. */
export interface Report {
  /** ISO 8601, when the run started. */
  date: string;
  quick: boolean;
  /** The suites run, when --only chose some. */
  only: string[] | undefined;
  command: string;
  machine: Machine;
  productRepo: string;
  productCommit: string;
  /** The commit of bench/ itself, when BENCH_REPO points the product elsewhere. */
  harnessCommit: string | undefined;
  generator: string;
  pinning: string;
  rows: Row[];
  ceilings: CeilingResult[];
  /** Measures skipped, and why. */
  notices: string[];
  durationSeconds: number;
  /** The machine's load average (1, 5 and 15 minutes) when the run started and ended: other work on it. */
  loadAverage?: { start: number[]; end: number[] };
}

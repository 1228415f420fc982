import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig, type Config } from "../src/config.js";
import { GROUPS } from "../src/groups/index.js";
import type { Log, LogRecord } from "../src/log/log.js";
import { Service } from "../src/service.js";

export const REPO_DIR = join(import.meta.dir, "..");

/** A fresh DATA_DIR under the system temp folder; `cleanup` removes it. */
export function tempDataDir(): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), "depositaja-test-"));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function testConfig(dataDir: string, env: Record<string, string> = {}): Config {
  return loadConfig({ DATA_DIR: dataDir, PORT: "0", EMBEDDED_POLL_MS: "10", ...env });
}

/** Starts everything in this process as `bun run dev` does (processors on a worker thread), on a fresh DATA_DIR. */
export async function startDev(env: Record<string, string> = {}): Promise<{ service: Service; log: Log; base: string; dataDir: string; stop(): Promise<void> }> {
  const data = tempDataDir();
  const service = await Service.start(testConfig(data.dir, env), { api: true, groups: GROUPS, processorsOnWorker: true });
  return {
    service,
    log: service.log!,
    dataDir: data.dir,
    base: `http://127.0.0.1:${service.port}`,
    async stop() {
      await service.stop();
      data.cleanup();
    },
  };
}

/**
 * Retries `check` until it stops throwing, or throws its last error after
 * `timeoutMs`. For state that converges asynchronously (processors, views).
 */
export async function eventually<T>(check: () => T | Promise<T>, timeoutMs = 10_000, intervalMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() >= deadline) throw error;
      await Bun.sleep(intervalMs);
    }
  }
}

/** A `bun run dev` child process on `dataDir`, with its port read from its output. */
export function spawnDev(dataDir: string, env: Record<string, string> = {}): Promise<{ proc: Bun.Subprocess; base: string }> {
  return spawnApi("dev", dataDir, env);
}

/**
 * A child process serving the API (`dev` or `api`), with its port read from its output.
 * With `options.output`, everything it prints (stdout and stderr) is passed to it;
 * otherwise its stderr is this process's.
 */
export async function spawnApi(
  script: "dev" | "api",
  dataDir: string,
  env: Record<string, string> = {},
  options: { output?: (text: string) => void } = {},
): Promise<{ proc: Bun.Subprocess; base: string }> {
  const output = options.output;
  const proc = Bun.spawn([process.execPath, join(REPO_DIR, `src/cli/${script}.ts`)], {
    cwd: REPO_DIR,
    env: { ...process.env, DATA_DIR: dataDir, PORT: "0", EMBEDDED_POLL_MS: "10", ...env },
    stdout: "pipe",
    stderr: output ? "pipe" : "inherit",
  });
  if (output) {
    (async () => {
      for await (const chunk of proc.stderr as ReadableStream<Uint8Array>) output(new TextDecoder().decode(chunk));
    })().catch(() => {});
  }
  const reader = (proc.stdout as ReadableStream<Uint8Array>).getReader();
  let text = "";
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    const chunk = new TextDecoder().decode(value);
    output?.(chunk);
    text += chunk;
    const match = /listening on http:\/\/localhost:(\d+)/.exec(text);
    if (match) {
      // Keep draining stdout so the child never blocks on a full pipe.
      (async () => {
        for (let read = await reader.read(); !read.done; read = await reader.read()) output?.(new TextDecoder().decode(read.value));
      })().catch(() => {});
      return { proc, base: `http://127.0.0.1:${match[1]}` };
    }
  }
  proc.kill("SIGKILL");
  throw new Error(`${script} did not start: ${text}`);
}

/** Runs a package script's entry point (a CLI) to completion. */
export async function runCli(script: string, args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  const proc = Bun.spawn([process.execPath, join(REPO_DIR, `src/cli/${script}.ts`), ...args], {
    cwd: REPO_DIR,
    env: { ...process.env, ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}

/** A log to run the end-to-end suites against: its env for the service and the CLIs. */
export interface Backend {
  name: "embedded" | "kafka";
  /** A fresh environment; on Kafka, a topic prefix no other suite uses. */
  env(): Record<string, string>;
}

/**
 * The logs the contract suites run on: always the embedded log, and Kafka when a
 * broker can be had (see test/kafka-broker.ts; under CI=true it must be).
 */
export async function backends(suite: string): Promise<Backend[]> {
  const { kafkaOrSkip, uniquePrefix } = await import("./kafka-broker.js");
  // BROKERS is emptied explicitly: child processes inherit this process's env, and CI
  // exports BROKERS for the Kafka half.
  const list: Backend[] = [{ name: "embedded", env: () => ({ BROKERS: "" }) }];
  const brokers = await kafkaOrSkip(`${suite} on Kafka`);
  if (brokers) list.push({ name: "kafka", env: () => ({ BROKERS: brokers, TOPIC_PREFIX: uniquePrefix(suite.replace(/\W+/g, "-")) }) });
  return list;
}

/** A `bun run processor` child process on a DATA_DIR of its own, its output collected. */
export interface ProcessorProcess {
  proc: Bun.Subprocess;
  output(): string;
  cleanup(): void;
}

/**
 * A `processor` child on a DATA_DIR of its own, or on `options.dataDir` (not removed by
 * cleanup). `options.output` is passed everything it prints, as it comes.
 */
export function spawnProcessor(env: Record<string, string>, options: { dataDir?: string; args?: string[]; output?: (text: string) => void } = {}): ProcessorProcess {
  const data = options.dataDir ? { dir: options.dataDir, cleanup() {} } : tempDataDir();
  const proc = Bun.spawn([process.execPath, join(REPO_DIR, "src/cli/processor.ts"), ...(options.args ?? [])], {
    cwd: REPO_DIR,
    env: { ...process.env, ...env, DATA_DIR: data.dir },
    stdout: "pipe",
    stderr: "pipe",
  });
  let text = "";
  for (const stream of [proc.stdout, proc.stderr] as ReadableStream<Uint8Array>[]) {
    (async () => {
      for await (const chunk of stream) {
        const decoded = new TextDecoder().decode(chunk);
        text += decoded;
        options.output?.(decoded);
      }
    })().catch(() => {});
  }
  return { proc, output: () => text, cleanup: data.cleanup };
}

/**
 * The partitions of `group` a processor holds, replayed from its output: the runtime
 * logs "[group] restored partitions …" when it takes partitions and "[group] revoked
 * partitions …" when it loses them.
 */
export function heldPartitions(output: string, group: string): Set<number> {
  const holding = new Set<number>();
  for (const m of output.matchAll(new RegExp(`\\[${group}\\] (restored|revoked) partitions ([\\d,]+)`, "g"))) {
    for (const p of m[2]!.split(",").map(Number)) {
      if (m[1] === "restored") holding.add(p);
      else holding.delete(p);
    }
  }
  return holding;
}

/** Every record of a topic, in partition order: for tests that look at what was written. */
export async function readTopic(log: Log, topic: string): Promise<LogRecord[]> {
  const ends = await log.endOffsets(topic);
  const records: LogRecord[] = [];
  for await (const batch of log.replay(topic, ends.map((_, partition) => ({ topic, partition, offset: 0 })))) records.push(...batch);
  return records;
}

/** mulberry32: a small seeded PRNG, so a failing randomized run can be replayed from its seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

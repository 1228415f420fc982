import { existsSync } from "node:fs";
import { join } from "node:path";
import { REPO_DIR } from "./support.js";

/**
 * The broker for Kafka tests: BROKERS if set, else a single-node Apache Kafka started
 * with scripts/kafka.sh when Java and Maven are here. Without either, Kafka tests are
 * skipped with a loud notice, and under CI=true that is a failure.
 */
let brokers: Promise<string | undefined> | undefined;

export function haveCommand(name: string): boolean {
  return Bun.spawnSync(["sh", "-c", `command -v ${name}`]).exitCode === 0;
}

export function kafkaBrokers(): Promise<string | undefined> {
  brokers ??= (async () => {
    if (process.env.BROKERS) return process.env.BROKERS;
    if (!haveCommand("java") || !haveCommand("mvn") || !existsSync(join(REPO_DIR, "scripts/kafka.sh"))) return undefined;
    const started = Date.now();
    const proc = Bun.spawn(["bash", join(REPO_DIR, "scripts/kafka.sh"), "start"], { stdout: "pipe", stderr: "inherit" });
    const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
    const match = /BROKERS=(\S+)/.exec(out);
    if (code !== 0 || !match) throw new Error(`scripts/kafka.sh start failed (exit ${code}): ${out}`);
    console.log(`kafka: broker ${match[1]} ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return match[1];
  })();
  return brokers;
}

/** Resolves the broker, or explains the skip (and fails under CI=true). */
export async function kafkaOrSkip(suite: string): Promise<string | undefined> {
  const found = await kafkaBrokers();
  if (found) return found;
  const notice = `\n!!! SKIPPED ${suite}: no Kafka broker (set BROKERS, or install Java and Maven for scripts/kafka.sh) !!!\n`;
  console.warn(notice);
  if (process.env.CI === "true") throw new Error(`${suite} needs a Kafka broker under CI=true${notice}`);
  return undefined;
}

/** A topic prefix no earlier run used, so tests on one broker never see each other's data. */
export const uniquePrefix = (label: string) => `t${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}-${label}.`;

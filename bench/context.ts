// What every suite of measures is given.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Ceilings } from "./ceiling.js";
import type { LogTarget } from "./product.js";
import type { Sizes } from "./sizes.js";

export interface Context {
  sizes: Sizes;
  ceilings: Ceilings;
  /** Bootstrap brokers, when a Kafka broker is available. */
  brokers: string | undefined;
  /** Unique per run; names wallets, deposits and topics so runs never meet. */
  tag: string;
  /** A fresh empty directory, removed at the end of the run. */
  tempDir(label: string): string;
}

/** Temporary directories made during a run, all removed by `removeAll`. */
export function tempDirs(): { make(label: string): string; removeAll(): void } {
  const made: string[] = [];
  return {
    make(label) {
      const dir = mkdtempSync(join(tmpdir(), `depositaja-bench-${label}-`));
      made.push(dir);
      return dir;
    },
    removeAll() {
      for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The broker with topics and groups no other run uses. Only Kafka suites call this. */
export function kafkaTarget(ctx: Context, label: string): LogTarget {
  if (!ctx.brokers) throw new Error("a Kafka measure ran without a broker");
  return { brokers: ctx.brokers, topicPrefix: `bench-${ctx.tag}-${label}.` };
}

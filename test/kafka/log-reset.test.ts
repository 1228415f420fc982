// A broker that restarted empty (its topics gone and created again) under a processor
// whose state.db remembers more than the log holds: the processor refuses to go on,
// says what happened and how to recover, and --rebuild-state takes the log as it is.
import { afterAll, describe, expect, test } from "bun:test";
import { Admin } from "@platformatic/kafka";
import { Database } from "bun:sqlite";
import { join } from "node:path";
import { loadConfig } from "../../src/config.js";
import { openLog } from "../../src/log/open.js";
import { Emitter } from "../../src/runtime/emitter.js";
import { deposits } from "../../src/topics/deposits.js";
import { kafkaOrSkip, uniquePrefix } from "../kafka-broker.js";
import { eventually, spawnProcessor, tempDataDir } from "../support.js";

const brokers = await kafkaOrSkip("log reset on Kafka");

describe.skipIf(!brokers)("a Kafka log that went backwards", () => {
  const env = { BROKERS: brokers ?? "", TOPIC_PREFIX: uniquePrefix("reset") };
  const data = tempDataDir();
  afterAll(() => data.cleanup());

  async function emit(ids: string[]): Promise<void> {
    const log = await openLog(loadConfig({ ...env, DATA_DIR: tempDataDir().dir }), "cli");
    try {
      const emitter = new Emitter(log, deposits);
      for (const id of ids) await emitter.emit({ depositId: id, walletId: "reset-w", amountMinor: 100n, eventTimeMs: Date.now() });
    } finally {
      await log.close();
    }
  }

  /** Deposits the balance group applied, per this instance's state.db. */
  function applied(): number {
    const db = new Database(join(data.dir, "state.db"), { readonly: true });
    try {
      return (db.query("SELECT COALESCE(SUM(next_offset), 0) AS n FROM progress WHERE owner = 'balance' AND topic = 'deposits'").get() as { n: number }).n;
    } finally {
      db.close();
    }
  }

  test("is refused with an error that says how to recover; --rebuild-state starts over from the log", async () => {
    const first = spawnProcessor(env, { dataDir: data.dir });
    await emit(["a", "b", "c"]);
    await eventually(() => expect(applied()).toBe(3), 60_000, 200);
    first.proc.kill("SIGTERM");
    await first.proc.exited;

    // The broker loses its data: every topic of this run, gone and then created anew.
    const admin = new Admin({ clientId: "log-reset-test", bootstrapBrokers: env.BROKERS.split(",") });
    try {
      const mine = (await admin.listTopics()).filter((t) => t.startsWith(env.TOPIC_PREFIX));
      await admin.deleteTopics({ topics: mine });
      await eventually(async () => expect((await admin.listTopics()).filter((t) => t.startsWith(env.TOPIC_PREFIX))).toEqual([]), 30_000, 200);
    } finally {
      await admin.close();
    }

    const refused = spawnProcessor(env, { dataDir: data.dir });
    const code = await Promise.race([refused.proc.exited, Bun.sleep(60_000).then(() => "still running")]);
    expect(code).toBe(70);
    expect(refused.output()).toContain("LogWentBackwardsError");
    expect(refused.output()).toMatch(/applied \S+\/\d+ up to offset \d+, but the log ends at 0/);
    expect(refused.output()).toContain("--rebuild-state");
    expect(applied()).toBe(3);

    const rebuilt = spawnProcessor(env, { dataDir: data.dir, args: ["--rebuild-state"] });
    try {
      await emit(["d"]);
      await eventually(() => expect(applied()).toBe(1), 60_000, 200);
      expect(rebuilt.proc.exitCode).toBeNull();
    } finally {
      rebuilt.proc.kill("SIGTERM");
      await rebuilt.proc.exited;
    }
  }, 180_000);
});

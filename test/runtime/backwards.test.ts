// A log that went backwards (a broker restarted without its data, an older log.db) is
// refused, never skipped: stored progress past the log's end stops the processor with
// an error that says what happened and how to recover.
import { describe, expect, test } from "bun:test";
import { balance } from "../../src/groups/index.js";
import { EmbeddedLog } from "../../src/log/embedded.js";
import { isRetryable } from "../../src/runtime/errors.js";
import { topicSpecs } from "../../src/runtime/group.js";
import { OutboxCommitter } from "../../src/runtime/commit.js";
import { Processor } from "../../src/runtime/processor.js";
import { LogWentBackwardsError } from "../../src/runtime/restore.js";
import { deposits } from "../../src/topics/deposits.js";
import { config, Harness, limits, PARTITIONS } from "./harness.js";

const deposit = (id: string, amountMinor: bigint) => ({
  topic: deposits.name,
  key: "alice",
  value: deposits.codec.encode({ depositId: id, walletId: "alice", amountMinor, eventTimeMs: 0 }),
});

describe("a log that went backwards", () => {
  test("is refused with an error that names the partition and the way back", async () => {
    const h = new Harness("outbox", [balance]);
    try {
      await h.init();
      await h.log.produce([deposit("d1", 100n), deposit("d2", 50n), deposit("d3", 25n)]);
      await h.drain();
      await h.processors.get("balance")!.stop();
      // The broker comes back empty: same topics, no records. This instance's store
      // still says it applied three deposits.
      const reset = new EmbeddedLog(":memory:", { pollMs: 1 });
      await reset.ensureTopics(topicSpecs([balance], PARTITIONS));
      await reset.produce([deposit("n1", 7n)]);
      const processor = new Processor(balance, balance.actor(config), reset, h.store, new OutboxCommitter(reset, h.store), limits);
      let caught: unknown;
      try {
        for (let i = 0; i < 3; i++) await processor.step(0);
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(LogWentBackwardsError);
      expect(isRetryable(caught)).toBe(false);
      expect((caught as Error).message).toMatch(/applied .*\/\d+ up to offset \d+, but the log ends at \d+/);
      expect((caught as Error).message).toContain("--rebuild-state");
      // Nothing was applied from the new log on top of the old state.
      expect(balance.table.codec.decode(h.store.row("balance", "alice")!.value).balanceMinor).toBe(175n);
      await processor.stop();

      // --rebuild-state: the instance forgets its state of the group and takes the log as it is.
      h.store.drop("balance");
      const rebuilt = new Processor(balance, balance.actor(config), reset, h.store, new OutboxCommitter(reset, h.store), limits);
      for (let i = 0; i < 4; i++) await rebuilt.step(0);
      expect(balance.table.codec.decode(h.store.row("balance", "alice")!.value).balanceMinor).toBe(7n);
      await rebuilt.stop();
      reset.sqlite.close();
    } finally {
      h.close();
    }
  });

  test("an embedded log cannot go backwards under its state: both live in log.db", async () => {
    const h = new Harness("shared", [balance]);
    try {
      await h.init();
      await h.log.produce([deposit("d1", 100n)]);
      await h.drain();
      // Surgery a log.db can only undergo by hand: its records gone, its state kept.
      h.log.sqlite.run("DELETE FROM records");
      h.log.sqlite.run("UPDATE partition_heads SET next_offset = 0");
      await h.processors.get("balance")!.stop();
      const processor = h.fresh("balance", {});
      await expect((async () => {
        for (let i = 0; i < 3; i++) await processor.step(0);
      })()).rejects.toBeInstanceOf(LogWentBackwardsError);
      await processor.stop();
    } finally {
      h.close();
    }
  });
});

import { expect, test } from "bun:test";
import { join } from "node:path";
import { openLog } from "../../src/log/open.js";
import { EmbeddedLog } from "../../src/log/embedded.js";
import { tempDataDir, testConfig } from "../support.js";
import { logContract } from "./contract.js";

const options = { pollMs: 10, heartbeatMs: 100, sessionTimeoutMs: 600 };

logContract("embedded", async () => {
  const data = tempDataDir();
  const log = EmbeddedLog.open(data.dir, options);
  return {
    log,
    other: async () => EmbeddedLog.open(data.dir, options),
    cleanup: async () => {
      await log.close();
      data.cleanup();
    },
  };
});

test("embedded: acknowledged records survive closing and reopening the file", async () => {
  const data = tempDataDir();
  try {
    const log = EmbeddedLog.open(data.dir, options);
    await log.ensureTopics([{ name: "t", partitions: 2 }]);
    const positions = await log.produce([{ topic: "t", key: "k", value: new Uint8Array([1, 2, 3]) }]);
    await log.close();
    const reopened = EmbeddedLog.open(data.dir, options);
    const [record] = reopened.read(positions[0]!, 10);
    expect(record?.value).toEqual(new Uint8Array([1, 2, 3]));
    expect(await reopened.endOffsets("t")).toEqual(positions[0]!.partition === 0 ? [1, 0] : [0, 1]);
    await reopened.close();
  } finally {
    data.cleanup();
  }
});

test("embedded: the API's connection opens while another connection holds the write lock", async () => {
  const data = tempDataDir();
  try {
    const config = testConfig(data.dir);
    const processor = await openLog(config, "processor");
    // Another process (a processor's) in the middle of a 300 ms commit.
    const script = `const db = new (require("bun:sqlite").Database)(${JSON.stringify(join(data.dir, "log.db"))}); db.run("BEGIN IMMEDIATE"); console.log("locked"); Bun.sleepSync(300); db.run("COMMIT");`;
    const holder = Bun.spawn([process.execPath, "-e", script], { stdout: "pipe" });
    const reader = holder.stdout.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toContain("locked");
    const api = await openLog(config, "api");
    await api.close();
    expect(await holder.exited).toBe(0);
    await processor.close();
  } finally {
    data.cleanup();
  }
});

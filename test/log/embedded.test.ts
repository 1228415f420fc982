import { expect, test } from "bun:test";
import { EmbeddedLog } from "../../src/log/embedded.js";
import { tempDataDir } from "../support.js";
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

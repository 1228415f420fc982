import { describe, expect, test } from "bun:test";
import { murmur2, partitionForKey } from "../../src/log/murmur2.js";

// org.apache.kafka.common.utils.UtilsTest.testMurmur2: the Java client's own vectors.
const KAFKA_VECTORS: [string, number][] = [
  ["21", -973932308],
  ["foobar", -790332482],
  ["a-little-bit-long-string", -985981536],
  ["a-little-bit-longer-string", -1486304829],
  ["lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971],
  ["abc", 479470107],
];

const bytes = (text: string) => new TextEncoder().encode(text);

describe("murmur2 matches Kafka's Utils.murmur2", () => {
  test.each(KAFKA_VECTORS)("murmur2(%p) = %p", (key, expected) => {
    expect(murmur2(bytes(key))).toBe(expected);
  });

  test("the partition is Kafka's toPositive(murmur2) % partitions", () => {
    for (const [key, hash] of KAFKA_VECTORS) {
      for (const partitions of [1, 3, 12, 1024]) {
        expect(partitionForKey(key, partitions)).toBe((hash & 0x7fffffff) % partitions);
      }
    }
    // A negative hash must be masked, not negated: -790332482 & 0x7fffffff = 1357151166.
    expect(partitionForKey("foobar", 12)).toBe(1357151166 % 12);
  });

  test("keys are hashed as UTF-8 bytes", () => {
    expect(partitionForKey("é", 1024)).toBe((murmur2(new Uint8Array([0xc3, 0xa9])) & 0x7fffffff) % 1024);
  });
});

/**
 * Kafka's default partitioner for keyed records: murmur2 of the key bytes (seed
 * 0x9747b28c, as org.apache.kafka.common.utils.Utils.murmur2), made positive by
 * masking the sign bit, modulo the partition count. Matching it exactly is what lets
 * rpk, kcat and the Java client put a wallet's records where ours go.
 */

const SEED = 0x9747b28c;
const M = 0x5bd1e995;
const R = 24;

export function murmur2(data: Uint8Array): number {
  const length = data.length;
  let h = (SEED ^ length) | 0;
  const length4 = length >>> 2;
  for (let i = 0; i < length4; i++) {
    const i4 = i * 4;
    let k = (data[i4]! & 0xff) | ((data[i4 + 1]! & 0xff) << 8) | ((data[i4 + 2]! & 0xff) << 16) | ((data[i4 + 3]! & 0xff) << 24);
    k = Math.imul(k, M);
    k ^= k >>> R;
    k = Math.imul(k, M);
    h = Math.imul(h, M);
    h ^= k;
  }
  // The last one to three bytes, folded in from the highest (Java's switch falls through).
  const tail = length & ~3;
  const extra = length % 4;
  if (extra === 3) h ^= (data[tail + 2]! & 0xff) << 16;
  if (extra >= 2) h ^= (data[tail + 1]! & 0xff) << 8;
  if (extra >= 1) {
    h ^= data[tail]! & 0xff;
    h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

const encoder = new TextEncoder();

/** The partition Kafka's default partitioner picks for a string key. */
export function partitionForKey(key: string, partitions: number): number {
  return (murmur2(encoder.encode(key)) & 0x7fffffff) % partitions;
}

import { Admin, Consumer, ListOffsetTimestamps, ProduceAcks, Producer, type Message } from "@platformatic/kafka";
import {
  CoPartitioningError,
  UnknownTopicError,
  type Headers,
  type Log,
  type LogRecord,
  type PollResult,
  type ProduceRecord,
  type RecordPosition,
  type Subscription,
  type SubscribeOptions,
  type TopicPartition,
  type TopicSpec,
} from "./log.js";
import { partitionForKey } from "./murmur2.js";

export interface KafkaLogOptions {
  brokers: string[];
  clientId: string;
  /** Prepended to every topic and consumer group on the broker: isolates tenants and tests. */
  topicPrefix: string;
  replicationFactor: number;
  /** How long a produced record waits for others to share its request. */
  lingerMs: number;
  produceBatchRecordsMax: number;
  /** Upper bound on the bytes one fetch returns, per request. */
  fetchBytesMax: number;
  sessionTimeoutMs: number;
  heartbeatMs: number;
  rebalanceTimeoutMs: number;
  /**
   * A produce that has not settled by then is failed. The records may still land; a
   * client that retries with the same deposit id is then counted once.
   */
  produceTimeoutMs: number;
  /**
   * Records waiting to be sent, at most. Past it `produce` fails at once (the API
   * answers 503) rather than queueing without bound while the broker is away.
   */
  produceQueueRecordsMax: number;
}

export const DEFAULT_KAFKA_OPTIONS: Omit<KafkaLogOptions, "brokers"> = {
  clientId: "depositaja",
  topicPrefix: "",
  replicationFactor: 1,
  lingerMs: 5,
  produceBatchRecordsMax: 1_000,
  fetchBytesMax: 1024 * 1024,
  sessionTimeoutMs: 6_000,
  heartbeatMs: 1_000,
  rebalanceTimeoutMs: 15_000,
  produceTimeoutMs: 30_000,
  produceQueueRecordsMax: 50_000,
};

interface PendingProduce {
  records: { topic: string; partition: number; key: string; value: Uint8Array; headers?: Headers }[];
  resolve(positions: RecordPosition[]): void;
  reject(error: unknown): void;
}

const toBuffer = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
const tpKey = (tp: TopicPartition) => `${tp.topic}\u0000${tp.partition}`;

/**
 * The Log port on Kafka or Redpanda, through @platformatic/kafka.
 *
 * - The producer is idempotent with acks=all, so `produce` resolves only once every
 *   in-sync replica has the records, and a retried request never duplicates them.
 *   Records wait up to `lingerMs` to share a request with others.
 * - Partitions are chosen here with Kafka's murmur2 (the Java client's placement) and
 *   sent explicitly, which is also how each record's offset is known: the broker
 *   answers with one base offset per partition of the request.
 * - Consumers use the classic group protocol with manual commits; the runtime keeps
 *   its own progress and commits after its transaction.
 */
export class KafkaLog implements Log {
  readonly kind = "kafka" as const;
  private readonly admin: Admin;
  private readonly producer: Producer;
  private readonly partitionCounts = new Map<string, number>();
  private queue: PendingProduce[] = [];
  private queuedRecords = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private flushing: Promise<void> | undefined;
  private readonly subscriptions = new Set<KafkaSubscription>();
  private closed = false;

  constructor(readonly options: KafkaLogOptions) {
    const base = { clientId: options.clientId, bootstrapBrokers: options.brokers };
    this.admin = new Admin(base);
    this.producer = new Producer({ ...base, idempotent: true, acks: ProduceAcks.ALL });
  }

  /** The name of a topic or group on the broker. */
  wire(name: string): string {
    return this.options.topicPrefix + name;
  }

  async ensureTopics(specs: TopicSpec[]): Promise<void> {
    const existing = new Set(await this.admin.listTopics());
    const missing = specs.filter((s) => !existing.has(this.wire(s.name)));
    for (const spec of missing) {
      try {
        await this.admin.createTopics({
          topics: [this.wire(spec.name)],
          partitions: spec.partitions,
          replicas: this.options.replicationFactor,
          configs: spec.compacted ? [{ name: "cleanup.policy", value: "compact" }] : [],
        });
      } catch (error) {
        // Another instance may have created it a moment ago; the check below decides.
        if (!/already exists/i.test(String((error as Error).message) + JSON.stringify((error as { errors?: unknown }).errors ?? ""))) throw error;
      }
    }
    for (const spec of specs) {
      const actual = await this.fetchPartitionCount(spec.name);
      if (actual !== spec.partitions) throw new CoPartitioningError(spec.name, spec.partitions, actual);
    }
  }

  private async fetchPartitionCount(topic: string): Promise<number> {
    const metadata = await this.admin.metadata({ topics: [this.wire(topic)] });
    const count = metadata.topics.get(this.wire(topic))?.partitionsCount;
    if (!count) throw new UnknownTopicError(topic);
    this.partitionCounts.set(topic, count);
    return count;
  }

  async partitionCount(topic: string): Promise<number> {
    return this.partitionCounts.get(topic) ?? (await this.fetchPartitionCount(topic));
  }

  async produce(records: ProduceRecord[]): Promise<RecordPosition[]> {
    if (this.closed) throw new Error("log is closed");
    const routed: PendingProduce["records"] = [];
    for (const r of records) {
      const count = await this.partitionCount(r.topic);
      const partition = r.partition ?? partitionForKey(r.key, count);
      if (!Number.isInteger(partition) || partition < 0 || partition >= count) {
        throw new RangeError(`partition ${partition} does not exist in topic ${r.topic} (${count} partitions)`);
      }
      routed.push({ topic: r.topic, partition, key: r.key, value: r.value, headers: r.headers });
    }
    if (this.queuedRecords + routed.length > this.options.produceQueueRecordsMax) {
      throw new Error(`produce queue is full (${this.options.produceQueueRecordsMax} records): the broker is not keeping up`);
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ records: routed, resolve, reject });
      this.queuedRecords += routed.length;
      if (this.queuedRecords >= this.options.produceBatchRecordsMax) void this.flush();
      else this.timer ??= setTimeout(() => void this.flush(), this.options.lingerMs);
    });
  }

  /** Sends queued records, one request at a time (the idempotent producer allows one in flight). */
  private flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.flushing ??= (async () => {
      while (this.queue.length > 0) {
        const batch: PendingProduce[] = [];
        let size = 0;
        while (this.queue.length > 0 && (batch.length === 0 || size + this.queue[0]!.records.length <= this.options.produceBatchRecordsMax)) {
          const next = this.queue.shift()!;
          size += next.records.length;
          batch.push(next);
        }
        this.queuedRecords -= size;
        await this.send(batch);
      }
    })().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  private async send(batch: PendingProduce[]): Promise<void> {
    const all = batch.flatMap((p) => p.records);
    try {
      const result = await withTimeout(this.options.produceTimeoutMs, "produce", () => this.producer.send({
        messages: all.map((r) => ({
          topic: this.wire(r.topic),
          partition: r.partition,
          key: Buffer.from(r.key, "utf8"),
          value: toBuffer(r.value),
          // A Map of Buffers: given a plain object, the library passes the string keys
          // to its Buffer-only writer and the send never settles.
          headers: new Map(Object.entries(r.headers ?? {}).map(([k, v]) => [Buffer.from(k, "utf8"), Buffer.from(v, "utf8")])),
        })),
      }));
      // One base offset per partition of the request; records of a partition follow
      // it in the order they were sent.
      const next = new Map<string, number>();
      for (const o of result.offsets ?? []) next.set(`${o.topic}\u0000${o.partition}`, Number(o.offset));
      const positions = all.map((r) => {
        const key = `${this.wire(r.topic)}\u0000${r.partition}`;
        const offset = next.get(key);
        if (offset === undefined) throw new Error(`broker returned no offset for ${r.topic}/${r.partition}`);
        next.set(key, offset + 1);
        return { topic: r.topic, partition: r.partition, offset };
      });
      let i = 0;
      for (const p of batch) {
        p.resolve(positions.slice(i, i + p.records.length));
        i += p.records.length;
      }
    } catch (error) {
      for (const p of batch) p.reject(error);
    }
  }

  async endOffsets(topic: string): Promise<number[]> {
    const count = await this.partitionCount(topic);
    const result = await this.admin.listOffsets({
      topics: [{ name: this.wire(topic), partitions: Array.from({ length: count }, (_, p) => ({ partitionIndex: p, timestamp: ListOffsetTimestamps.LATEST })) }],
    } as never) as unknown as { partitions: { partitionIndex: number; offset: bigint }[] }[];
    const ends = new Array<number>(count).fill(0);
    for (const p of result[0]?.partitions ?? []) ends[p.partitionIndex] = Number(p.offset);
    return ends;
  }

  subscribe(options: SubscribeOptions): Subscription {
    const subscription = new KafkaSubscription(this, options, () => this.subscriptions.delete(subscription));
    this.subscriptions.add(subscription);
    return subscription;
  }

  async *replay(topic: string, from: RecordPosition[]): AsyncIterable<LogRecord[]> {
    const ends = await this.endOffsets(topic);
    const wanted = from.filter((p) => p.offset < ends[p.partition]!);
    if (wanted.length === 0) return;
    const consumer = this.consumer(`${this.wire("replay")}-${crypto.randomUUID()}`);
    try {
      // A group of one reads every partition; those not wanted start at their end.
      const stream = await consumer.consume({
        topics: [this.wire(topic)],
        mode: "manual",
        offsets: wanted.map((p) => ({ topic: this.wire(topic), partition: p.partition, offset: BigInt(p.offset) })),
        fallbackMode: "latest",
        autocommit: false,
      });
      const remaining = new Map(wanted.map((p) => [p.partition, ends[p.partition]!]));
      let batch: LogRecord[] = [];
      for await (const message of stream as AsyncIterable<Message>) {
        const record = this.toRecord(message);
        const end = remaining.get(record.partition);
        if (end === undefined || record.offset >= end) continue;
        batch.push(record);
        if (record.offset + 1 >= end) remaining.delete(record.partition);
        if (batch.length >= 2_000 || remaining.size === 0) {
          yield batch;
          batch = [];
        }
        if (remaining.size === 0) break;
      }
      if (batch.length > 0) yield batch;
      await stream.close();
    } finally {
      await consumer.close(true);
    }
  }

  /** A consumer with this log's limits; `groupId` is already on the wire. */
  consumer(groupId: string): Consumer {
    return new Consumer({
      clientId: this.options.clientId,
      bootstrapBrokers: this.options.brokers,
      groupId,
      groupProtocol: "classic",
      autocommit: false,
      sessionTimeout: this.options.sessionTimeoutMs,
      heartbeatInterval: this.options.heartbeatMs,
      rebalanceTimeout: this.options.rebalanceTimeoutMs,
      maxBytes: this.options.fetchBytesMax,
      maxWaitTime: 200,
    });
  }

  toRecord(message: Message): LogRecord {
    const headers: Headers = {};
    for (const [k, v] of message.headers ?? []) headers[String(k)] = String(v);
    return {
      topic: message.topic.slice(this.options.topicPrefix.length),
      partition: message.partition,
      offset: Number(message.offset),
      key: message.key ? message.key.toString("utf8") : "",
      value: new Uint8Array(message.value ?? Buffer.alloc(0)),
      timestampMs: Number(message.timestamp),
      headers,
    };
  }

  async ping(): Promise<void> {
    if (this.closed) throw new Error("log is closed");
    await this.admin.metadata({ topics: [] });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.flush();
    this.closed = true;
    await Promise.all([...this.subscriptions].map((s) => s.close()));
    await this.producer.close();
    await this.admin.close();
  }
}

/**
 * A subscription on a Kafka consumer. The consumer's stream fills a bounded buffer
 * (paused when full) that `poll` drains. Assignment changes come from the group's
 * join events and are reported before any record of a new partition. Without a
 * group, a group of one with a unique id reads every partition from the start.
 *
 * `seek` can only move forward: records below the offset are dropped as they come.
 * The runtime never needs to go back on Kafka, because a partition's state is restored
 * from the changelogs rather than re-derived from the input.
 */
class KafkaSubscription implements Subscription {
  private consumer: Consumer | undefined;
  private stream: (AsyncIterable<Message> & { pause(): void; resume(): void; close(): Promise<void>; on(event: string, f: (...a: never[]) => void): void }) | undefined;
  private starting: Promise<void> | undefined;
  private buffer: LogRecord[] = [];
  private readonly assignment = new Set<string>();
  private changes = { assigned: [] as TopicPartition[], revoked: [] as TopicPartition[] };
  private readonly floor = new Map<string, number>();
  private wake: (() => void) | undefined;
  private failure: Error | undefined;
  private closed = false;
  private static readonly BUFFER_RECORDS_MAX = 5_000;

  constructor(private readonly log: KafkaLog, private readonly options: SubscribeOptions, private readonly onClose: () => void) {}

  private start(): Promise<void> {
    this.starting ??= (async () => {
      const groupId = this.options.group ? this.log.wire(this.options.group) : `${this.log.wire("view")}-${crypto.randomUUID()}`;
      const consumer = this.log.consumer(groupId);
      this.consumer = consumer;
      consumer.on("consumer:group:join", (event: { assignments?: { topic: string; partitions: number[] }[] }) => this.onJoin(event.assignments ?? []));
      const stream = await consumer.consume({
        topics: this.options.topics.map((t) => this.log.wire(t)),
        mode: this.options.group ? "committed" : "earliest",
        fallbackMode: "earliest",
        autocommit: false,
      });
      this.stream = stream as unknown as NonNullable<KafkaSubscription["stream"]>;
      this.onJoin(consumer.assignments ?? []);
      this.stream.on("data", (message: never) => this.onMessage(message));
      this.stream.on("error", (error: never) => {
        this.failure = error;
        this.notify();
      });
    })();
    return this.starting;
  }

  private onJoin(assignments: { topic: string; partitions: number[] }[]): void {
    const now = new Set(assignments.flatMap((a) => a.partitions.map((p) => tpKey({ topic: a.topic.slice(this.log.options.topicPrefix.length), partition: p }))));
    for (const key of now) {
      if (this.assignment.has(key)) continue;
      this.assignment.add(key);
      this.changes.assigned.push(fromKey(key));
    }
    for (const key of [...this.assignment]) {
      if (now.has(key)) continue;
      this.assignment.delete(key);
      this.floor.delete(key);
      this.changes.revoked.push(fromKey(key));
    }
    // Changes pile up until the next poll, where the runtime applies "revoked" before
    // "assigned". A partition given and taken away again in between must be reported
    // as revoked only, or the runtime would end up holding it.
    const revoked = new Map(this.changes.revoked.map((tp) => [tpKey(tp), tp]));
    this.changes = {
      assigned: this.changes.assigned.filter((tp) => this.assignment.has(tpKey(tp))),
      revoked: [...revoked.values()],
    };
    this.buffer = this.buffer.filter((r) => this.assignment.has(tpKey(r)));
    this.notify();
  }

  private onMessage(message: Message): void {
    const record = this.log.toRecord(message);
    const key = tpKey(record);
    if (!this.assignment.has(key) || record.offset < (this.floor.get(key) ?? 0)) return;
    this.buffer.push(record);
    if (this.buffer.length >= KafkaSubscription.BUFFER_RECORDS_MAX) this.stream?.pause();
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  async poll(maxRecords: number, maxWaitMs: number): Promise<PollResult> {
    if (this.closed) return { records: [], assigned: [], revoked: [] };
    await this.start();
    const deadline = Date.now() + maxWaitMs;
    for (;;) {
      if (this.failure) {
        const failure = this.failure;
        await this.reset();
        throw failure;
      }
      if (this.changes.assigned.length > 0 || this.changes.revoked.length > 0) {
        const changes = this.changes;
        this.changes = { assigned: [], revoked: [] };
        return { records: [], ...changes };
      }
      // Resumed here whatever emptied the buffer: a revocation or a seek can drop its
      // records without a poll taking them, and a stream left paused never refills.
      if (this.buffer.length < KafkaSubscription.BUFFER_RECORDS_MAX / 2) this.stream?.resume();
      if (this.buffer.length > 0) {
        return { records: this.buffer.splice(0, maxRecords), assigned: [], revoked: [] };
      }
      const left = deadline - Date.now();
      if (left <= 0 || this.closed) return { records: [], assigned: [], revoked: [] };
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /**
   * Drops the broken consumer after a stream error. Its partitions are reported as
   * revoked at the next poll, which starts a new consumer that joins the group again.
   */
  private async reset(): Promise<void> {
    const consumer = this.consumer;
    const stream = this.stream;
    this.failure = undefined;
    this.starting = undefined;
    this.consumer = undefined;
    this.stream = undefined;
    for (const key of this.assignment) this.changes.revoked.push(fromKey(key));
    this.changes.assigned = [];
    this.assignment.clear();
    this.floor.clear();
    this.buffer = [];
    await stream?.close().catch(() => {});
    await consumer?.close(true).catch(() => {});
  }

  seek(position: RecordPosition): void {
    const key = tpKey(position);
    this.floor.set(key, position.offset);
    this.buffer = this.buffer.filter((r) => tpKey(r) !== key || r.offset >= position.offset);
  }

  async commit(positions: RecordPosition[]): Promise<void> {
    if (!this.options.group) throw new Error("commit needs a consumer group");
    if (!this.consumer || positions.length === 0) return;
    await this.consumer.commit({
      offsets: positions.map((p) => ({ topic: this.log.wire(p.topic), partition: p.partition, offset: BigInt(p.offset), leaderEpoch: -1 })),
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.notify();
    this.onClose();
    await this.starting?.catch(() => {});
    await this.stream?.close().catch(() => {});
    await this.consumer?.close(true).catch(() => {});
  }
}

function withTimeout<T>(ms: number, what: string, run: () => Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not complete within ${ms} ms`)), ms);
  });
  return Promise.race([run(), expired]).finally(() => clearTimeout(timer));
}

function fromKey(key: string): TopicPartition {
  const [topic, partition] = key.split("\u0000");
  return { topic: topic!, partition: Number(partition) };
}


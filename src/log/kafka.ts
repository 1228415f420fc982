import { Admin, Consumer, ListOffsetTimestamps, ProduceAcks, Producer, type Message } from "@platformatic/kafka";
import { hasApiError, isRetryable, LogUnavailableError } from "../runtime/errors.js";
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
   * A produce not stored by then is answered with LogUnavailableError. The request to
   * the broker goes on (bounded by the client's own retries), and may still land: a
   * client that retries with the same id is then counted once.
   */
  produceTimeoutMs: number;
  /**
   * Records waiting to be sent, at most (PRODUCE_QUEUE_RECORDS_MAX). Past it `produce`
   * fails at once (the API answers 503) rather than queueing without bound while the
   * broker is away or slow. An empty queue takes one produce of any size.
   */
  produceQueueRecordsMax: number;
}

export const DEFAULT_KAFKA_OPTIONS: Omit<KafkaLogOptions, "brokers"> = {
  clientId: "depositaja",
  topicPrefix: "",
  replicationFactor: 1,
  lingerMs: 2,
  produceBatchRecordsMax: 5_000,
  fetchBytesMax: 4 * 1024 * 1024,
  sessionTimeoutMs: 6_000,
  heartbeatMs: 1_000,
  rebalanceTimeoutMs: 15_000,
  produceTimeoutMs: 5_000,
  produceQueueRecordsMax: 50_000,
};

/**
 * The client's network bounds. Without them it retries a dead broker for ever (an
 * idempotent producer turns `retries` of 0 or 1 into "infinite") and every call of ours
 * hangs. With them a call fails with a retryable error within seconds: about 0.6 s
 * against a refused connection, about 6.6 s against a frozen broker (three requests of
 * 2 s and two waits of 0.3 s), and the runtime's own backoff takes over.
 */
const CLIENT_BOUNDS = { retries: 2, retryDelay: 300, connectTimeout: 1_000 } as const;
/** Requests other than a consumer's: none legitimately takes longer. */
const REQUEST_TIMEOUT_MS = 2_000;
/** A consumer's JoinGroup may wait for a whole rebalance, so its requests may take longer. */
const CONSUMER_REQUEST_TIMEOUT_MS = 20_000;

interface PendingProduce {
  records: { topic: string; partition: number; key: string; value: Uint8Array; headers?: Headers }[];
  resolve(positions: RecordPosition[]): void;
  reject(error: unknown): void;
  settled: boolean;
}

const toBuffer = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
const tpKey = (tp: TopicPartition) => `${tp.topic}\u0000${tp.partition}`;

/**
 * The Log port on Kafka or Redpanda, through @platformatic/kafka.
 *
 * - The producer is idempotent with acks=all, so `produce` resolves only once every
 *   in-sync replica has the records. Records wait up to `lingerMs` to share a request.
 * - Exactly one request is ever inside the client. With two in flight during an
 *   outage, the client recovers from OUT_OF_ORDER_SEQUENCE_NUMBER by resetting the
 *   sequence numbers under the older request, whose records the broker then takes
 *   for duplicates and confirms without writing them. A caller whose deadline passes
 *   is answered at once, but the next request waits for the one in flight to settle.
 *   Offsets that do not move forward are taken as that failure and the producer is
 *   replaced.
 * - Partitions are chosen here with Kafka's murmur2 (the Java client's placement) and
 *   sent explicitly, which is also how each record's offset is known: the broker
 *   answers with one base offset per partition of the request.
 * - Consumers use the classic group protocol, manual commits, and an assignor that
 *   gives partition p of every topic to the same member (co-partitioning).
 * - `ping` asks the broker through a client of its own with no retries, never from
 *   the metadata cache, so it fails within its timeout while the broker is away.
 */
/** How long a topic just created may stay unknown to the metadata before that is an error. */
const TOPIC_METADATA_WAIT_MS = 10_000;

export class KafkaLog implements Log {
  readonly kind = "kafka" as const;
  private readonly admin: Admin;
  private readonly probe: Admin;
  private producer: Producer;
  private readonly partitionCounts = new Map<string, number>();
  private queue: PendingProduce[] = [];
  private queuedRecords = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private flushing: Promise<void> | undefined;
  private readonly lastOffsets = new Map<string, number>();
  private readonly subscriptions = new Set<KafkaSubscription>();
  private closed = false;

  constructor(readonly options: KafkaLogOptions) {
    const base = { clientId: options.clientId, bootstrapBrokers: options.brokers, ...CLIENT_BOUNDS, requestTimeout: REQUEST_TIMEOUT_MS };
    this.admin = new Admin(base);
    this.probe = new Admin({ ...base, clientId: `${options.clientId}-probe`, retries: 0 });
    this.producer = this.newProducer();
  }

  private newProducer(): Producer {
    const { clientId, brokers } = this.options;
    // `timeout` is how long the broker waits for the in-sync replicas to acknowledge.
    return new Producer({ clientId, bootstrapBrokers: brokers, ...CLIENT_BOUNDS, requestTimeout: REQUEST_TIMEOUT_MS, timeout: REQUEST_TIMEOUT_MS, idempotent: true, acks: ProduceAcks.ALL });
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
        if (!hasApiError(error, "TOPIC_ALREADY_EXISTS")) throw error;
      }
    }
    // Every topic was listed or just created (by this client or another: `dev` starts
    // the API's and the processors' clients at once), so an unknown one is one whose
    // creation the metadata has not caught up with yet.
    for (const spec of specs) {
      const actual = await this.createdPartitionCount(spec.name);
      if (actual !== spec.partitions) throw new CoPartitioningError(spec.name, spec.partitions, actual);
    }
  }

  /**
   * The partition count of a topic that exists, or was created a moment ago. The broker answers the
   * creation before every broker's metadata knows the topic, so the client may call it
   * unknown for a while (the more topics created at once, the longer): asked again
   * until it is known, for at most TOPIC_METADATA_WAIT_MS.
   */
  private async createdPartitionCount(topic: string): Promise<number> {
    const deadline = Date.now() + TOPIC_METADATA_WAIT_MS;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.fetchPartitionCount(topic, attempt > 0);
      } catch (error) {
        if (Date.now() >= deadline) throw error;
        await Bun.sleep(100);
      }
    }
  }

  private async fetchPartitionCount(topic: string, forceUpdate = false): Promise<number> {
    const metadata = await this.admin.metadata({ topics: [this.wire(topic)], forceUpdate });
    const count = metadata.topics.get(this.wire(topic))?.partitionsCount;
    if (!count) throw new UnknownTopicError(topic);
    this.partitionCounts.set(topic, count);
    return count;
  }

  async partitionCount(topic: string): Promise<number> {
    return this.partitionCounts.get(topic) ?? (await this.fetchPartitionCount(topic));
  }

  async produce(records: ProduceRecord[]): Promise<RecordPosition[]> {
    if (this.closed) throw new LogUnavailableError("log is closed");
    const routed: PendingProduce["records"] = [];
    for (const r of records) {
      const count = await this.partitionCount(r.topic);
      const partition = r.partition ?? partitionForKey(r.key, count);
      if (!Number.isInteger(partition) || partition < 0 || partition >= count) {
        throw new RangeError(`partition ${partition} does not exist in topic ${r.topic} (${count} partitions)`);
      }
      routed.push({ topic: r.topic, partition, key: r.key, value: r.value, headers: r.headers });
    }
    // An empty queue takes any one produce, so a processor's batch larger than the bound still goes.
    if (this.queuedRecords > 0 && this.queuedRecords + routed.length > this.options.produceQueueRecordsMax) {
      throw new LogUnavailableError(`produce queue is full (${this.options.produceQueueRecordsMax} records): the broker is not keeping up`);
    }
    return new Promise((resolve, reject) => {
      const pending: PendingProduce = { records: routed, resolve, reject, settled: false };
      const deadline = setTimeout(() => {
        this.settle(pending, new LogUnavailableError(`the log did not store the records within ${this.options.produceTimeoutMs} ms; they may still be stored`));
        const at = this.queue.indexOf(pending);
        if (at >= 0) {
          this.queue.splice(at, 1);
          this.queuedRecords -= routed.length;
        }
      }, this.options.produceTimeoutMs);
      pending.resolve = (positions) => {
        clearTimeout(deadline);
        resolve(positions);
      };
      pending.reject = (error) => {
        clearTimeout(deadline);
        reject(error);
      };
      this.queue.push(pending);
      this.queuedRecords += routed.length;
      if (this.queuedRecords >= this.options.produceBatchRecordsMax) void this.flush();
      else this.timer ??= setTimeout(() => void this.flush(), this.options.lingerMs);
    });
  }

  private settle(pending: PendingProduce, outcome: RecordPosition[] | Error): void {
    if (pending.settled) return;
    pending.settled = true;
    if (outcome instanceof Error) pending.reject(outcome);
    else pending.resolve(outcome);
  }

  /** Sends queued records, one request at a time, each awaited to the end (see the class). */
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
    let positions: RecordPosition[];
    try {
      const result = await this.producer.send({
        messages: all.map((r) => ({
          topic: this.wire(r.topic),
          partition: r.partition,
          key: Buffer.from(r.key, "utf8"),
          value: toBuffer(r.value),
          // A Map of Buffers: given a plain object, the library passes the string keys
          // to its Buffer-only writer and the send never settles.
          headers: new Map(Object.entries(r.headers ?? {}).map(([k, v]) => [Buffer.from(k, "utf8"), Buffer.from(v, "utf8")])),
        })),
      });
      positions = this.positionsOf(all, result.offsets ?? []);
    } catch (error) {
      for (const p of batch) this.settle(p, unavailable("produce", error));
      return;
    }
    let i = 0;
    for (const p of batch) {
      this.settle(p, positions.slice(i, i + p.records.length));
      i += p.records.length;
    }
  }

  /**
   * The position of each record sent: one base offset per partition of the request,
   * records of a partition following it in the order they were sent. A base offset at
   * or below one already confirmed means the client confirmed records it did not
   * write: the send counts as failed and the producer is replaced.
   */
  private positionsOf(all: PendingProduce["records"], offsets: { topic: string; partition: number; offset: bigint }[]): RecordPosition[] {
    const next = new Map<string, number>();
    for (const o of offsets) next.set(`${o.topic}\u0000${o.partition}`, Number(o.offset));
    for (const [key, base] of next) {
      if (base <= (this.lastOffsets.get(key) ?? -1)) {
        const stale = this.producer;
        this.producer = this.newProducer();
        // The new producer's confirmations are judged afresh: after a broker lost its
        // data, offsets legitimately start below the old ones.
        this.lastOffsets.clear();
        void stale.close(true).catch(() => {});
        throw new LogUnavailableError(`the broker confirmed ${key.replace("\u0000", "/")} at offset ${base}, not after ${this.lastOffsets.get(key)}: the records may not be stored`);
      }
    }
    return all.map((r) => {
      const key = `${this.wire(r.topic)}\u0000${r.partition}`;
      const offset = next.get(key);
      if (offset === undefined) throw new LogUnavailableError(`broker returned no offset for ${r.topic}/${r.partition}`);
      next.set(key, offset + 1);
      this.lastOffsets.set(key, offset);
      return { topic: r.topic, partition: r.partition, offset };
    });
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
    let failure: Error | undefined;
    let stream: MessageStream | undefined;
    // A failed consumer ends the replay (the stream is closed, which ends the loop) and
    // the replay fails with its error, to be retried.
    consumer.on("error", (error: Error) => {
      failure ??= error;
      void stream?.close().catch(() => {});
    });
    try {
      // A group of one reads every partition; those not wanted start at their end.
      stream = (await consumer.consume({
        topics: [this.wire(topic)],
        mode: "manual",
        offsets: wanted.map((p) => ({ topic: this.wire(topic), partition: p.partition, offset: BigInt(p.offset) })),
        fallbackMode: "latest",
        autocommit: false,
      })) as unknown as MessageStream;
      const remaining = new Map(wanted.map((p) => [p.partition, ends[p.partition]!]));
      let batch: LogRecord[] = [];
      for await (const message of stream) {
        const record = this.toRecord(message);
        const end = remaining.get(record.partition);
        if (end === undefined || record.offset >= end) continue;
        batch.push(record);
        if (record.offset + 1 >= end) remaining.delete(record.partition);
        if (batch.length >= 5_000 || remaining.size === 0) {
          yield batch;
          batch = [];
        }
        if (remaining.size === 0) break;
      }
      if (failure) throw unavailable("replay", failure);
      if (remaining.size > 0) throw new LogUnavailableError(`replay of ${topic} ended before partitions ${[...remaining.keys()].join(",")} were read`);
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
      ...CLIENT_BOUNDS,
      requestTimeout: CONSUMER_REQUEST_TIMEOUT_MS,
      groupId,
      groupProtocol: "classic",
      autocommit: false,
      sessionTimeout: this.options.sessionTimeoutMs,
      heartbeatInterval: this.options.heartbeatMs,
      rebalanceTimeout: this.options.rebalanceTimeoutMs,
      maxBytes: this.options.fetchBytesMax,
      maxWaitTime: 200,
      partitionAssigner: coPartitionedAssigner,
      // The client's option type does not name this option in full.
    } as ConstructorParameters<typeof Consumer<Buffer, Buffer, Buffer, Buffer>>[0]);
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

  async ping(timeoutMs: number): Promise<void> {
    if (this.closed) throw new LogUnavailableError("log is closed");
    const metadata = await withTimeout(timeoutMs, "ping", () => this.probe.metadata({ topics: [], forceUpdate: true }));
    if (metadata.brokers.size === 0) throw new LogUnavailableError("the cluster reports no brokers");
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.flush();
    this.closed = true;
    await Promise.all([...this.subscriptions].map((s) => s.close()));
    await this.producer.close();
    await this.admin.close();
    await this.probe.close();
  }
}

/** What the client gives an assignor, as far as this one reads it. */
interface AssignorMetadata {
  topics: Map<string, { partitionsCount: number }>;
}

/**
 * Partition p of every topic goes to the member at p modulo the number of members,
 * sorted by id (Goka's copartitioning strategy). The client's default round robin
 * deals topics one after another, which with some member counts gives deposits/p and
 * flags/p to different members, and a wallet's state to two of them.
 */
function coPartitionedAssigner(_self: string, members: Map<string, unknown>, topics: Set<string>, metadata: AssignorMetadata) {
  const ids = [...members.keys()].sort();
  const assignments = ids.map((memberId) => ({ memberId, assignments: new Map<string, { topic: string; partitions: number[] }>() }));
  for (const topic of topics) {
    const count = metadata.topics.get(topic)?.partitionsCount ?? 0;
    for (let partition = 0; partition < count; partition++) {
      const member = assignments[partition % ids.length]!.assignments;
      const entry = member.get(topic) ?? { topic, partitions: [] };
      entry.partitions.push(partition);
      member.set(topic, entry);
    }
  }
  return assignments;
}

type MessageStream = AsyncIterable<Message> & { pause(): void; resume(): void; close(): Promise<void>; on(event: string, f: (...a: never[]) => void): void };

/**
 * A subscription on a Kafka consumer. The consumer's stream fills a bounded buffer
 * (paused when full) that `poll` drains. Assignment changes come from the group's
 * join events and are reported before any record of a new partition. Without a
 * group, a group of one with a unique id reads every partition from the start.
 *
 * A consumer that fails (the broker went away: its stream errors and never comes
 * back, or `consume` itself fails) is closed and its partitions reported revoked; the
 * next poll starts a new one, which joins the group again.
 *
 * `seek` can only move forward: records below the offset are dropped as they come.
 * The runtime never needs to go back on Kafka, because a partition's state is restored
 * from the changelogs rather than re-derived from the input.
 */
class KafkaSubscription implements Subscription {
  private consumer: Consumer | undefined;
  private stream: MessageStream | undefined;
  private starting: Promise<void> | undefined;
  private buffer: LogRecord[] = [];
  private readonly assignment = new Set<string>();
  private changes = { assigned: [] as TopicPartition[], revoked: [] as TopicPartition[] };
  private readonly floor = new Map<string, number>();
  private wake: (() => void) | undefined;
  private failure: Error | undefined;
  private closed = false;
  private readonly closedByUs = new WeakSet<Consumer>();
  private static readonly BUFFER_RECORDS_MAX = 5_000;

  constructor(private readonly log: KafkaLog, private readonly options: SubscribeOptions, private readonly onClose: () => void) {}

  private start(): Promise<void> {
    if (this.starting) return this.starting;
    const consumer = this.log.consumer(this.options.group ? this.log.wire(this.options.group) : `${this.log.wire("view")}-${crypto.randomUUID()}`);
    this.starting = this.connect(consumer).catch(async (error) => {
      // A failed start must not stay cached: the next poll tries again. A consumer this
      // subscription closed itself fails with "client closed": that is no verdict on
      // the broker, and is retried like the outage that made us close it.
      const closedByUs = this.closedByUs.has(consumer);
      await this.reset();
      throw closedByUs ? new LogUnavailableError(`consume failed: ${(error as Error)?.message}`, { cause: error }) : unavailable("consume", error);
    });
    return this.starting;
  }

  private async connect(consumer: Consumer): Promise<void> {
    this.consumer = consumer;
    // The client emits 'error' when a rejoin after a failed heartbeat fails (a broker
    // that came back and is not the coordinator yet); unheard, it would end the process.
    consumer.on("error", (error: Error) => {
      // A consumer already replaced fails as it is closed: that is no news.
      if (this.consumer !== consumer) return;
      this.failure ??= error;
      this.notify();
    });
    consumer.on("consumer:group:join", (event: { assignments?: { topic: string; partitions: number[] }[] }) => {
      if (this.consumer === consumer) this.onJoin(event.assignments ?? []);
    });
    const stream = await consumer.consume({
      topics: this.options.topics.map((t) => this.log.wire(t)),
      mode: this.options.group ? "committed" : "earliest",
      fallbackMode: "earliest",
      autocommit: false,
    });
    this.stream = stream as unknown as MessageStream;
    this.onJoin(consumer.assignments ?? []);
    this.stream.on("data", (message: never) => this.onMessage(message));
    this.stream.on("error", (error: never) => {
      if (this.consumer !== consumer) return;
      this.failure ??= error;
      this.notify();
    });
  }

  /**
   * Every join is a new generation of the group, and is reported as all partitions
   * revoked and the new assignment assigned, even where they are the same: a member
   * that was dropped (its session expired while it was cut off) and joined again may
   * get back a partition that another member advanced meanwhile, and must restore it
   * and position itself again rather than carry on from what it had.
   *
   * Changes pile up until the next poll, where the runtime applies "revoked" before
   * "assigned"; the assignment reported is always the latest.
   */
  private onJoin(assignments: { topic: string; partitions: number[] }[]): void {
    const now = new Set(assignments.flatMap((a) => a.partitions.map((p) => tpKey({ topic: a.topic.slice(this.log.options.topicPrefix.length), partition: p }))));
    const revoked = new Map(this.changes.revoked.map((tp) => [tpKey(tp), tp]));
    for (const key of this.assignment) revoked.set(key, fromKey(key));
    this.changes = { assigned: [...now].map(fromKey), revoked: [...revoked.values()] };
    this.assignment.clear();
    for (const key of now) this.assignment.add(key);
    this.floor.clear();
    this.buffer = [];
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
        throw unavailable("the consumer", failure);
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
   * Drops the consumer. Its partitions are reported as revoked at the next poll, which
   * starts a new consumer that joins the group again.
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
    if (consumer) this.closedByUs.add(consumer);
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
    try {
      await this.consumer.commit({
        offsets: positions.map((p) => ({ topic: this.log.wire(p.topic), partition: p.partition, offset: BigInt(p.offset), leaderEpoch: -1 })),
      });
    } catch (error) {
      throw unavailable("commit", error);
    }
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

/**
 * The client's error as ours: a retryable one (the broker away) becomes a
 * LogUnavailableError, so every layer above sees one type; anything else is passed on
 * as it is, to stop whoever meets it.
 */
function unavailable(what: string, error: unknown): Error {
  if (error instanceof LogUnavailableError || !isRetryable(error)) return error as Error;
  return new LogUnavailableError(`${what} failed: ${(error as Error)?.message ?? String(error)}`, { cause: error });
}

function withTimeout<T>(ms: number, what: string, run: () => Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new LogUnavailableError(`${what} did not complete within ${ms} ms`)), ms);
  });
  return Promise.race([run(), expired]).finally(() => clearTimeout(timer));
}

function fromKey(key: string): TopicPartition {
  const [topic, partition] = key.split("\u0000");
  return { topic: topic!, partition: Number(partition) };
}

/**
 * The one port between Depositaja and its log. Two implementations sit behind it: an
 * embedded, durable log in SQLite (the default) and Kafka/Redpanda. Actors, the
 * runtime and the HTTP code see only this interface, so either log slots in.
 *
 * Semantics both implementations keep:
 * - Records with the same key land in the same partition: Kafka's murmur2 of the key,
 *   unless the producer names a partition.
 * - `produce` resolves only once every record is durably stored, in order.
 * - Delivery is at-least-once. Consumers make effects exactly-once with their own
 *   progress (see src/runtime).
 */

export interface TopicSpec {
  name: string;
  partitions: number;
  /** A changelog: keeps the latest record per key (Kafka cleanup.policy=compact). */
  compacted?: boolean;
}

export interface TopicPartition {
  topic: string;
  partition: number;
}

export interface RecordPosition extends TopicPartition {
  offset: number;
}

export type Headers = Record<string, string>;

export interface ProduceRecord {
  topic: string;
  /** The wallet id: decides the partition unless `partition` is given. */
  key: string;
  value: Uint8Array;
  partition?: number;
  headers?: Headers;
}

export interface LogRecord extends RecordPosition {
  key: string;
  value: Uint8Array;
  timestampMs: number;
  headers: Headers;
}

export interface SubscribeOptions {
  topics: string[];
  /**
   * With a group, the log shares the topics' partitions among the group's live
   * members and stores the group's committed offsets. Without one, the subscription
   * reads every partition (a view).
   */
  group?: string;
}

/**
 * What a poll found. Apply `revoked` before `assigned`: a partition in both was taken
 * away and given again (Kafka reports every new group generation so, since a member may
 * get back a partition another member advanced meanwhile), and must be restored and
 * positioned again.
 */
export interface PollResult {
  records: LogRecord[];
  /** Partitions given to this member; their position is the committed offset. */
  assigned: TopicPartition[];
  /** Partitions taken away; records of them are no longer returned. */
  revoked: TopicPartition[];
}

export interface Subscription {
  /** Waits up to maxWaitMs for records or an assignment change. */
  poll(maxRecords: number, maxWaitMs: number): Promise<PollResult>;
  /** Sets the next offset to read from an assigned partition. */
  seek(position: RecordPosition): void;
  /** Stores the group's committed offsets (the next offset to read). */
  commit(positions: RecordPosition[]): Promise<void>;
  close(): Promise<void>;
}

/** Appends records: what an emitter needs. */
export interface Producer {
  /**
   * Appends records; resolves with their positions once all are durably stored.
   * Rejects with a retryable error (LogUnavailableError) when the log cannot be
   * reached in time: the records may or may not have been stored.
   */
  produce(records: ProduceRecord[]): Promise<RecordPosition[]>;
}

/** Asks the log whether it answers, really (not from a cache). */
export interface Pinger {
  /** Resolves if the log answered within `timeoutMs`; rejects otherwise. */
  ping(timeoutMs: number): Promise<void>;
}

/** Creates and describes topics. */
export interface TopicAdmin {
  /**
   * Creates missing topics. Throws CoPartitioningError when an existing topic has a
   * different partition count, as co-partitioned groups would then route one wallet's
   * events to different partitions.
   */
  ensureTopics(specs: TopicSpec[]): Promise<void>;
  partitionCount(topic: string): Promise<number>;
  /** The next offset to be written, per partition. */
  endOffsets(topic: string): Promise<number[]>;
}

export interface Log extends Producer, Pinger, TopicAdmin {
  readonly kind: "embedded" | "kafka";
  subscribe(options: SubscribeOptions): Subscription;
  /**
   * Reads partitions of a topic from the given offsets up to their end offsets at the
   * time of the call, in batches, each partition in order. For restoring tables.
   */
  replay(topic: string, from: RecordPosition[]): AsyncIterable<LogRecord[]>;
  close(): Promise<void>;
}

export class CoPartitioningError extends Error {
  constructor(topic: string, expected: number, actual: number) {
    super(`topic ${topic} has ${actual} partitions but ${expected} are configured; topics must be co-partitioned. ` +
      `Set PARTITIONS=${actual} or recreate the topic.`);
    this.name = "CoPartitioningError";
  }
}

export class UnknownTopicError extends Error {
  constructor(topic: string) {
    super(`topic ${topic} does not exist`);
    this.name = "UnknownTopicError";
  }
}

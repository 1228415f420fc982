import type { Producer, RecordPosition } from "../log/log.js";
import type { Topic } from "./topic.js";

/**
 * A typed emitter for one topic (Goka's NewEmitter(topic, codec)): it encodes a value
 * with the topic's codec and keys it by the topic's key, so no caller assembles a
 * record by hand.
 */
export class Emitter<T> {
  constructor(private readonly producer: Producer, readonly topic: Topic<T>) {}

  /**
   * Appends one value; resolves with its position once the log has stored it durably.
   * Rejects with a retryable error when the log is away (it may or may not be stored).
   */
  async emit(value: T): Promise<RecordPosition> {
    const [position] = await this.producer.produce([{ topic: this.topic.name, key: this.topic.key(value), value: this.topic.codec.encode(value) }]);
    return position!;
  }
}

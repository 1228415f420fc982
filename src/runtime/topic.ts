import type { DescMessage } from "@bufbuild/protobuf";
import type { Codec } from "./codec.js";

/** What makes two events the same event: an id, and what must match for a repeat. */
export interface EventIdentity {
  /** Unique per key (wallet): the same id for the same wallet is one event. */
  id: string;
  /** Tells a repeat (same fingerprint) from a conflicting reuse of the id. */
  fingerprint: string;
}

/**
 * A topic of the public contract, declared once as a value (Goka's stream with its
 * codec): its name, how its values are encoded, which wallet each value belongs to,
 * and how events are identified. Emitters, processors, inspect and the topic specs all
 * work from this one declaration.
 */
export interface Topic<T> {
  readonly name: string;
  readonly codec: Codec<T>;
  /** The protobuf message of a value, for `inspect`. */
  readonly schema: DescMessage;
  /** The record key: the wallet the value belongs to, which decides its partition. */
  key(value: T): string;
  identity(value: T): EventIdentity;
  /** The dead-letter code for an id that comes again with another fingerprint. */
  readonly conflictCode: string;
  /**
   * The event's own time, for topics whose values carry one. It may be earlier than
   * the record's timestamp by any amount, later only by `eventTimeAheadMaxMs` (see
   * ProcessorLimits): a time far ahead would anchor windows and deadlines in the future.
   */
  eventTimeMs?(value: T): number;
}

// Kafka topic names allow these characters, up to 249; ".dlq" and "-table" are
// appended to derived names, and TOPIC_PREFIX prepended.
const TOPIC_NAME = /^[a-z][a-z0-9-]{0,62}$/;

/** Declares a topic; a malformed name is a programmer error caught at start-up. */
export function defineTopic<T>(topic: Topic<T>): Topic<T> {
  if (!TOPIC_NAME.test(topic.name)) throw new Error(`topic name ${JSON.stringify(topic.name)} must match ${TOPIC_NAME}`);
  return Object.freeze(topic);
}

/** The dead-letter topic of an input topic. */
export const deadLetterTopic = (topic: string) => `${topic}.dlq`;

/** The changelog topic of a group's table. */
export const changelogTopic = (group: string) => `${group}-table`;

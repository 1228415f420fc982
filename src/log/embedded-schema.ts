import { blob, integer, primaryKey, sqliteTable, text } from "drizzle-orm/sqlite-core";

/**
 * Tables of the embedded log (DATA_DIR/log.db). Offsets are per partition and dense,
 * as in Kafka: the n-th record of a partition has offset n.
 */

export const topics = sqliteTable("topics", {
  name: text("name").primaryKey(),
  partitions: integer("partitions").notNull(),
  compacted: integer("compacted", { mode: "boolean" }).notNull(),
});

/** The next offset of each partition; bumped in the transaction that appends. */
export const partitionHeads = sqliteTable("partition_heads", {
  topic: text("topic").notNull(),
  partition: integer("partition").notNull(),
  nextOffset: integer("next_offset").notNull(),
}, (t) => [primaryKey({ columns: [t.topic, t.partition] })]);

export const records = sqliteTable("records", {
  topic: text("topic").notNull(),
  partition: integer("partition").notNull(),
  offset: integer("offset").notNull(),
  key: text("key").notNull(),
  value: blob("value", { mode: "buffer" }).notNull(),
  /** JSON object of string headers, or null for none. */
  headers: text("headers"),
  timestampMs: integer("timestamp_ms").notNull(),
}, (t) => [primaryKey({ columns: [t.topic, t.partition, t.offset] })]);

/** Live members of each consumer group; a member is dead once its lease expires. */
export const groupMembers = sqliteTable("group_members", {
  group: text("group").notNull(),
  memberId: text("member_id").notNull(),
  expiresMs: integer("expires_ms").notNull(),
}, (t) => [primaryKey({ columns: [t.group, t.memberId] })]);

/** Committed offsets of each consumer group: the next offset to read. */
export const groupOffsets = sqliteTable("group_offsets", {
  group: text("group").notNull(),
  topic: text("topic").notNull(),
  partition: integer("partition").notNull(),
  offset: integer("offset").notNull(),
}, (t) => [primaryKey({ columns: [t.group, t.topic, t.partition] })]);

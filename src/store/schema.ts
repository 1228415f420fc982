import { blob, integer, primaryKey, sqliteTable, text } from "drizzle-orm/sqlite-core";

/**
 * Tables of the state store (DATA_DIR/state.db), shared by every processor group and
 * view of a process, each row tagged with its owner (`owner` is a group name such as
 * "balance", or a view name such as "view:balance-table").
 *
 * A group commits its table rows, its progress and its outbox in one transaction;
 * that is what makes a group's effects exactly-once.
 */

/** One value per key: the group's table (protobuf bytes of its *TableValue). */
export const tableRows = sqliteTable("table_rows", {
  owner: text("owner").notNull(),
  key: text("key").notNull(),
  value: blob("value", { mode: "buffer" }).notNull(),
  /** The input offset that produced this value: a view ignores older values. */
  version: integer("version").notNull(),
}, (t) => [primaryKey({ columns: [t.owner, t.key] })]);

/** The next input offset to apply, per input partition. */
export const progress = sqliteTable("progress", {
  owner: text("owner").notNull(),
  topic: text("topic").notNull(),
  partition: integer("partition").notNull(),
  nextOffset: integer("next_offset").notNull(),
}, (t) => [primaryKey({ columns: [t.owner, t.topic, t.partition] })]);

/**
 * Event ids already applied, per key, kept for good: the same id for the same wallet
 * counts once however late it comes again. `fingerprint` tells a repeat (same
 * content) from a conflicting reuse of the id.
 */
export const appliedEvents = sqliteTable("applied_events", {
  owner: text("owner").notNull(),
  key: text("key").notNull(),
  eventId: text("event_id").notNull(),
  fingerprint: text("fingerprint").notNull(),
  /** "applied", or the code of the rule that refused the event. */
  outcome: text("outcome").notNull(),
  topic: text("topic").notNull(),
  partition: integer("partition").notNull(),
  offset: integer("offset").notNull(),
}, (t) => [primaryKey({ columns: [t.owner, t.key, t.eventId] })]);

/** Records a group refused: undecodable, mis-keyed, or a reused id with new content. */
export const rejections = sqliteTable("rejections", {
  owner: text("owner").notNull(),
  topic: text("topic").notNull(),
  partition: integer("partition").notNull(),
  offset: integer("offset").notNull(),
  key: text("key").notNull(),
  code: text("code").notNull(),
  detail: text("detail").notNull(),
}, (t) => [primaryKey({ columns: [t.owner, t.topic, t.partition, t.offset] })]);

/**
 * Records a group has committed to emit (changelog values and events for other
 * groups), written with the state that produced them and deleted once the log has
 * them. A crash in between re-sends them: emits are at-least-once, and their
 * consumers dedupe (event ids, versions).
 */
export const outbox = sqliteTable("outbox", {
  id: integer("id").primaryKey({ autoIncrement: true }),
  owner: text("owner").notNull(),
  topic: text("topic").notNull(),
  partition: integer("partition"),
  key: text("key").notNull(),
  value: blob("value", { mode: "buffer" }).notNull(),
  headers: text("headers"),
});

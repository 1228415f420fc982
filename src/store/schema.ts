import { sql } from "drizzle-orm";
import { blob, index, integer, primaryKey, sqliteTable, text } from "drizzle-orm/sqlite-core";

/**
 * Tables of the state store: the processor groups' tables, their progress and their
 * applied event ids, and the views' replicas, each row tagged with its owner (a group
 * name such as "balance", or a view such as "view:balance-table").
 *
 * On the embedded log these tables live in the log's own database (DATA_DIR/log.db),
 * so one transaction consumes input, changes state and appends output. On Kafka they
 * live in DATA_DIR/state.db, one per process, with an outbox of what to produce.
 */

/** One value per key: the group's table (protobuf bytes of its *TableValue). */
export const tableRows = sqliteTable("table_rows", {
  owner: text("owner").notNull(),
  key: text("key").notNull(),
  value: blob("value", { mode: "buffer" }).notNull(),
  /** The version of the value (see ChangelogRecord): a replica ignores older ones. */
  version: integer("version").notNull(),
}, (t) => [primaryKey({ columns: [t.owner, t.key] })]);

/** The next input offset to apply, per input partition (and, for views and restores, per changelog partition). */
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
  /** "applied", "skipped" (an event of an input the group does not read, its id bound all the same), or the code of the business rule that refused it. */
  outcome: text("outcome").notNull(),
  /**
   * What the group recorded of the decision (the balance group: an OperationRecord),
   * so this one row is both the dedupe and the audit trail of an operation.
   */
  detail: blob("detail", { mode: "buffer" }),
  /** The ledger entry the decision wrote, numbered per key from 1; null if none. */
  seq: integer("seq"),
  /** When that entry was recorded, ms since the epoch; never decreases with seq. */
  recordedMs: integer("recorded_ms"),
}, (t) => [
  primaryKey({ columns: [t.owner, t.key, t.eventId] }),
  // History, newest first, and balance at a time: the entries of one key by number.
  index("applied_events_entries").on(t.owner, t.key, t.seq).where(sql`${t.seq} IS NOT NULL`),
]);

/**
 * Kafka only: what a committed batch has still to produce, one row per batch and
 * source partition (OutboxRecords), written with the state that produced it and
 * deleted once the log has it. A crash in between produces it again: consumers
 * dedupe by event id and by version.
 */
export const outbox = sqliteTable("outbox", {
  id: integer("id").primaryKey({ autoIncrement: true }),
  owner: text("owner").notNull(),
  /** The input partition whose batch wrote it: only the instance holding it sends it. */
  partition: integer("partition").notNull(),
  records: blob("records", { mode: "buffer" }).notNull(),
});

/**
 * Pending timers of a group's actors, per key: set by a decision, cleared when the
 * timer fires or the actor cancels it, in the batch's transaction and in its changelog
 * record (so a restore rebuilds them). The processor holding a partition scans it for
 * due timers (see src/runtime/timers.ts).
 */
export const timers = sqliteTable("timers", {
  owner: text("owner").notNull(),
  key: text("key").notNull(),
  timerId: text("timer_id").notNull(),
  /** The key's partition, so an instance scans only the partitions it holds. */
  partition: integer("partition").notNull(),
  dueMs: integer("due_ms").notNull(),
}, (t) => [
  primaryKey({ columns: [t.owner, t.key, t.timerId] }),
  index("timers_due").on(t.owner, t.partition, t.dueMs),
]);

import type { Log, ProduceRecord, RecordPosition } from "../log/log.js";
import type { AppliedId, StateStore, TableRow } from "../store/state-store.js";
import { partitionForKey } from "../log/murmur2.js";
import { appliedId } from "./batch.js";
import { decodeChangelog, type AppliedEvent, type Through } from "./changelog.js";
import { DecodeError } from "./codec.js";
import type { AnyGroup } from "./group.js";
import type { TimerRow } from "./timers.js";

/**
 * Stored progress that lies past the end of the log: the log was reset or replaced
 * (a broker restarted empty, a log.db swapped for an older one). Going on would skip
 * new records or apply old ones twice, so the process refuses to, and says how to
 * recover. Not retryable.
 */
export class LogWentBackwardsError extends Error {
  constructor(group: string, position: RecordPosition, end: number) {
    super(
      `group ${group}: this instance has applied ${position.topic}/${position.partition} up to offset ${position.offset}, ` +
        `but the log ends at ${end}. The log was reset or replaced (a broker that restarted without its data, or an older log.db), ` +
        "and going on would skip or double-count events. Restore the log's data, or rebuild this instance's state from the log " +
        "as it is now: restart the processor with --rebuild-state (it discards this instance's state of every group it runs).",
    );
    this.name = "LogWentBackwardsError";
  }
}

/** Refuses positions past the log's end, per partition. */
export async function checkNotAhead(group: string, log: Log, positions: RecordPosition[]): Promise<void> {
  const ends = new Map<string, number[]>();
  for (const position of positions) {
    if (!ends.has(position.topic)) ends.set(position.topic, await log.endOffsets(position.topic));
    const end = ends.get(position.topic)![position.partition] ?? 0;
    if (position.offset > end) throw new LogWentBackwardsError(group, position, end);
  }
}

/** Where restore keeps, per partition, the input progress the changelog had reached. */
const throughTopic = (group: AnyGroup, input: string) => `${group.changelog}@${input}`;

/**
 * Brings the table and the applied ids of `partitions` up to date from the group's
 * changelog, from where this instance last read it (the start, for an empty
 * state.db): rows merge newest-version-wins, applied ids are added, timers are set and
 * cleared in the order the batches did. Then each
 * partition resumes from whichever is further, its local progress or the progress
 * the changelog reflects, so events applied by whoever held it are neither applied
 * again nor re-read.
 *
 * The output of batch records past the last point known delivered is sent again: the
 * instance that wrote them may have died between its changelog and its output.
 *
 * Output this instance committed but never sent (it crashed in between) is still in
 * its outbox. If another instance wrote the changelog meanwhile, it applied that input
 * on its own, and this instance's state of the partition is rebuilt from the changelog
 * (see resume). If nobody did, the outbox is sent at the next publish. Returns the
 * number of records read.
 */
export async function restorePartitions(group: AnyGroup, log: Log, store: StateStore, partitions: number[]): Promise<number> {
  const owner = group.name;
  const inputs = group.inputs.map((i) => i.topic.name);
  const from = partitions.map((partition) => ({ topic: group.changelog, partition, offset: store.progress(owner, { topic: group.changelog, partition }) }));
  await checkNotAhead(owner, log, from);
  const through = new Map<number, Through>(partitions.map((p) => [p, new Map(inputs.map((topic) => [topic, store.progress(owner, { topic: throughTopic(group, topic), partition: p })]))]));
  let restored = 0;
  let skipped = 0;
  /** Per partition: where delivered output ended, and the output of batch records past it, in order. */
  const undelivered = new Map<number, { before: number; records: { offset: number; output: ProduceRecord[]; events: AppliedEvent[] }[] }>();
  /** Partitions whose changelog someone else wrote to since this instance last read or wrote it. */
  const moved = new Set<number>();
  for await (const batch of log.replay(group.changelog, from)) {
    for (const record of batch) moved.add(record.partition);
    const rows = new Map<string, TableRow>();
    const applied: AppliedId[] = [];
    const timers: TimerRow[] = [];
    for (const record of batch) {
      let entry;
      try {
        entry = decodeChangelog(record.key, record.value);
        // A row this group cannot read would stop it later, at every restart: skip it
        // here, as views do, and the wallet keeps its last good value.
        if (entry.kind === "row") group.table.codec.decode(entry.value);
      } catch (error) {
        if (!(error instanceof DecodeError)) throw error;
        skipped++;
        continue;
      }
      if (entry.kind === "row") {
        const held = rows.get(entry.walletId);
        if (!held || held.version < entry.version) rows.set(entry.walletId, { key: entry.walletId, value: entry.value, version: entry.version });
        continue;
      }
      for (const e of entry.events) applied.push(appliedId(group, e, () => skipped++));
      const pending = undelivered.get(record.partition) ?? { before: 0, records: [] };
      pending.before = Math.max(pending.before, entry.outputDeliveredBefore);
      pending.records = pending.records.filter((r) => r.offset >= pending.before);
      if (entry.output.length > 0 || (group.records?.derived && entry.events.length > 0)) pending.records.push({ offset: record.offset, output: entry.output, events: entry.events });
      undelivered.set(record.partition, pending);
      for (const t of entry.timers) timers.push({ key: t.walletId, timerId: t.timerId, partition: record.partition, dueMs: t.dueMs });
      through.set(record.partition, furthest(through.get(record.partition)!, entry.through));
    }
    const positions = [...lastPositions(batch), ...throughPositions(group, through)];
    store.merge(owner, [...rows.values()], applied, positions, timers);
    restored += batch.length;
  }
  if (skipped > 0) console.warn(`[${owner}] skipped ${skipped} undecodable changelog records while restoring`);
  // The output of batches whose delivery is not known: the instance that wrote them may
  // have died between the changelog and the output. Readers dedupe what came twice.
  const batches = [...undelivered.values()].flatMap((p) => p.records.filter((r) => r.offset >= p.before));
  if (batches.length > 0) {
    const count = await log.partitionCount(group.changelog);
    const resend = batches.flatMap((b) => [...b.output, ...derivedOutput(group, b.events, count)]);
    if (resend.length > 0) await log.produce(resend);
  }
  const diverged = partitions.filter((partition) => resume(group, store, partition, through.get(partition)!, moved.has(partition)) === "diverged");
  if (diverged.length === 0) return restored;
  // This instance and the changelog each applied input the other did not (a group of
  // several inputs, read in another order by an instance that took the partition over
  // meanwhile): neither history contains the other. The changelog is the published one:
  // this instance's state of those partitions is dropped and rebuilt from it.
  console.warn(`[${owner}] partitions ${diverged.join(",")} diverged from their changelog: rebuilding them from it`);
  const count = await log.partitionCount(group.changelog);
  for (const partition of diverged) store.dropPartition(owner, partition, (key) => partitionForKey(key, count), [...group.inputs.map((i) => i.topic.name), group.changelog, ...inputs.map((t) => throughTopic(group, t))]);
  return restored + (await restorePartitions(group, log, store, diverged));
}

/**
 * Picks the progress a restored partition resumes from.
 *
 * Output this instance committed but never sent (its outbox) means its state holds
 * decisions the changelog does not. If someone else wrote the changelog meanwhile, it
 * decided the same input on its own, possibly in another order across inputs (and so
 * differently: a withdrawal before or after a flag), so this state is not a prefix of
 * the published one: diverged, whatever the offsets say. Otherwise: if the changelog has
 * applied at least what this instance has, input by input, the changelog wins; if this
 * instance has applied at least what the changelog has, it keeps its progress and its
 * outbox is still to be sent; else the two diverged.
 */
function resume(group: AnyGroup, store: StateStore, partition: number, changelog: Through, moved: boolean): "changelog" | "local" | "diverged" {
  const owner = group.name;
  const unsent = store.outbox(owner, new Set([partition]), 1).length > 0;
  if (unsent && moved) return "diverged";
  const local = new Map(group.inputs.map((i) => [i.topic.name, store.progress(owner, { topic: i.topic.name, partition })]));
  if (covers(changelog, local)) {
    store.deleteOutboxOf(owner, partition);
    store.transaction(() => store.writeProgress(owner, [...changelog].map(([topic, offset]) => ({ topic, partition, offset }))));
    return "changelog";
  }
  return covers(local, changelog) ? "local" : "diverged";
}

/** The emits of a group's derived topic that a batch's records made (see Records.derived). */
function derivedOutput(group: AnyGroup, events: AppliedEvent[], partitions: number): ProduceRecord[] {
  const records = group.records;
  const derived = records?.derived;
  if (!records || !derived) return [];
  const out: ProduceRecord[] = [];
  for (const e of events) {
    if (e.detail.byteLength === 0) continue;
    let record;
    try {
      record = records.codec.decode(e.detail);
    } catch (error) {
      if (error instanceof DecodeError) continue;
      throw error;
    }
    const value = derived.emit(e.walletId, e.eventId, record);
    if (value === undefined) continue;
    const key = derived.topic.key(value);
    out.push({ topic: derived.topic.name, key, partition: partitionForKey(key, partitions), value: derived.topic.codec.encode(value) });
  }
  return out;
}

/** Whether `a` has read at least as far as `b` in every input. */
function covers(a: Through, b: Through): boolean {
  return [...b].every(([topic, offset]) => (a.get(topic) ?? 0) >= offset);
}

/** The further of two progresses, input by input. */
export function furthest(a: Through, b: Through): Through {
  const out = new Map(a);
  for (const [topic, offset] of b) out.set(topic, Math.max(offset, out.get(topic) ?? 0));
  return out;
}

function throughPositions(group: AnyGroup, through: Map<number, Through>): RecordPosition[] {
  return [...through].flatMap(([partition, t]) => [...t].map(([topic, offset]) => ({ topic: throughTopic(group, topic), partition, offset })));
}

/** The next offset after the last record of each partition in `records`. */
function lastPositions(records: { topic: string; partition: number; offset: number }[]): RecordPosition[] {
  const last = new Map<number, RecordPosition>();
  for (const r of records) last.set(r.partition, { topic: r.topic, partition: r.partition, offset: r.offset + 1 });
  return [...last.values()];
}

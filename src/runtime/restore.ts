import type { Log, RecordPosition } from "../log/log.js";
import type { AppliedId, StateStore, TableRow } from "../store/state-store.js";
import { decodeChangelog, versionOf, type Through } from "./changelog.js";
import { DecodeError } from "./codec.js";
import type { AnyGroup } from "./group.js";

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
 * state.db): rows merge newest-version-wins, applied ids are added. Then each
 * partition resumes from whichever is further, its local progress or the progress
 * the changelog reflects, so events applied by whoever held it are neither applied
 * again nor re-read.
 *
 * Output this instance committed but never sent (it crashed in between) is still in
 * its outbox. If the changelog has caught up with or passed the local progress
 * (another instance applied the same input meanwhile), that output is stale and
 * dropped: a compacted topic keeps the last record written, not the newest version.
 * Otherwise it is sent at the next publish. Returns the number of records read.
 */
export async function restorePartitions(group: AnyGroup, log: Log, store: StateStore, partitions: number[]): Promise<number> {
  const owner = group.name;
  const inputs = group.inputs.map((i) => i.topic.name);
  const from = partitions.map((partition) => ({ topic: group.changelog, partition, offset: store.progress(owner, { topic: group.changelog, partition }) }));
  await checkNotAhead(owner, log, from);
  const through = new Map(partitions.map((p) => [p, new Map(inputs.map((topic) => [topic, store.progress(owner, { topic: throughTopic(group, topic), partition: p })]))]));
  let restored = 0;
  let skipped = 0;
  for await (const batch of log.replay(group.changelog, from)) {
    const rows = new Map<string, TableRow>();
    const applied: AppliedId[] = [];
    for (const record of batch) {
      let entry;
      try {
        entry = decodeChangelog(record.key, record.value);
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
      for (const e of entry.events) applied.push({ key: e.walletId, eventId: e.eventId, fingerprint: e.fingerprint, outcome: e.outcome });
      const reached = through.get(record.partition)!;
      if (versionOf(entry.through) > versionOf(reached)) through.set(record.partition, new Map(entry.through));
    }
    const positions = [...lastPositions(batch), ...throughPositions(group, through)];
    store.merge(owner, [...rows.values()], applied, positions);
    restored += batch.length;
  }
  if (skipped > 0) console.warn(`[${owner}] skipped ${skipped} undecodable changelog records while restoring`);
  for (const partition of partitions) resume(group, store, partition, through.get(partition)!);
  return restored;
}

/** Picks the progress a restored partition resumes from, and drops a stale outbox. */
function resume(group: AnyGroup, store: StateStore, partition: number, changelog: Through): void {
  const owner = group.name;
  const local = new Map(group.inputs.map((i) => [i.topic.name, store.progress(owner, { topic: i.topic.name, partition })]));
  if (versionOf(changelog) < versionOf(local)) return;
  store.deleteOutboxOf(owner, partition);
  store.transaction(() => store.writeProgress(owner, [...changelog].map(([topic, offset]) => ({ topic, partition, offset }))));
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

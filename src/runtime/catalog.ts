import { fromBinary, toJson, type DescMessage, type JsonValue } from "@bufbuild/protobuf";
import type { LogRecord } from "../log/log.js";
import { decodeChangelog } from "./changelog.js";
import { decodeDeadLetter } from "./dead-letter.js";
import type { AnyGroup } from "./group.js";
import { deadLetterTopic } from "./topic.js";

/** Turns a record's value into JSON for people; throws if it does not decode. */
export type Describe = (record: LogRecord) => unknown;

const json = (schema: DescMessage, bytes: Uint8Array) => toJson(schema, fromBinary(schema, bytes), { alwaysEmitImplicit: true });

/**
 * How to print the value of every topic the groups read or write, derived from their
 * declarations: declared topics by their protobuf message, changelogs by the
 * changelog format and the group's table message, dead letters by their format and,
 * inside, the original's message. `inspect` uses it.
 */
export function topicCatalog(groups: readonly AnyGroup[]): Map<string, Describe> {
  const catalog = new Map<string, Describe>();
  for (const group of groups) {
    for (const topic of [...group.inputs.map((i) => i.topic), ...group.emits]) catalog.set(topic.name, (r) => json(topic.schema, r.value));
    for (const { topic } of group.inputs) catalog.set(deadLetterTopic(topic.name), (r) => describeDeadLetter(r, topic.schema));
    const records = group.records;
    catalog.set(group.changelog, (r) => {
      const entry = decodeChangelog(r.key, r.value);
      if (entry.kind === "row") return { row: json(group.table.schema, entry.value), version: entry.version };
      return {
        batch: entry.events.map((e) => ({
          wallet_id: e.walletId,
          event_id: e.eventId,
          fingerprint: e.fingerprint,
          outcome: e.outcome,
          ...(records && e.detail.byteLength > 0 ? { record: json(records.schema, e.detail) } : {}),
        })),
        through: Object.fromEntries(entry.through),
        version: entry.version,
      };
    });
  }
  return catalog;
}

function describeDeadLetter(record: LogRecord, schema: DescMessage): unknown {
  const letter = decodeDeadLetter(record.value);
  let original: JsonValue;
  try {
    original = json(schema, letter.value);
  } catch {
    original = { undecodable_base64: Buffer.from(letter.value).toString("base64") };
  }
  return {
    group: letter.group,
    reason_code: letter.reasonCode,
    reason: letter.reason,
    source: { topic: letter.sourceTopic, partition: letter.sourcePartition, offset: Number(letter.sourceOffset) },
    key: letter.key,
    headers: letter.headers,
    value: original,
  };
}

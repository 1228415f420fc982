import { balanceActor } from "../../actors/balance.js";
import { flaggerActor } from "../../actors/flagger.js";
import { thresholdActor } from "../../actors/threshold.js";
import type { Actor, DepositEvent, FlagChange } from "../../actors/types.js";
import type { Config } from "../config.js";
import type { TopicSpec } from "../log/log.js";
import { balanceTableCodec, depositCodec, flagCodec, flaggerTableCodec, thresholdTableCodec, type Codec } from "./codecs.js";

/** Topic names: the public contract of the log. */
export const TOPICS = {
  deposits: "deposits",
  flags: "flags",
  table: (group: GroupName) => `${group}-table`,
} as const;

export type GroupName = "balance" | "threshold" | "flagger";
export const GROUP_NAMES: readonly GroupName[] = ["balance", "threshold", "flagger"];

/** An event the runtime will produce for an actor, keyed by wallet. */
export interface Emit {
  topic: string;
  key: string;
  value: Uint8Array;
}

/**
 * A processor group, validated at construction like a Goka group graph: one input
 * topic, a keyed actor, the codec of its table, and how to identify events so that the
 * same event id for the same key is applied once.
 */
export interface GroupDefinition<S, In, Out> {
  name: GroupName;
  input: string;
  inputCodec: Codec<In>;
  actor: Actor<S, In, Out>;
  table: Codec<S>;
  /** The key the event belongs to; a record whose key differs is refused. */
  keyOf(event: In): string;
  /** The event's id, and what must match for a repeat of it to be a duplicate. */
  identity(event: In): { id: string; fingerprint: string };
  /** Code recorded when an id comes again with a different fingerprint. */
  conflictCode: string;
  emit(out: Out): Emit;
}

// Erases the type parameters for code that handles every group alike.
// biome-ignore lint: the runtime is generic over the state type.
export type AnyGroup = GroupDefinition<any, any, any>;

function define<S, In, Out>(group: GroupDefinition<S, In, Out>): GroupDefinition<S, In, Out> {
  if (!group.input) throw new Error(`group ${group.name} has no input topic`);
  if (group.actor.name !== group.name) throw new Error(`group ${group.name} runs actor ${group.actor.name}`);
  return group;
}

const depositIdentity = (d: DepositEvent) => ({ id: d.depositId, fingerprint: `amount_minor=${d.amountMinor}` });
const noEmits = (out: never): Emit => out;

export function buildGroups(config: Config): Record<GroupName, AnyGroup> {
  const limits = { depositAmountMaxMinor: config.depositAmountMaxMinor, balanceMaxMinor: config.balanceMaxMinor };
  return {
    balance: define({
      name: "balance",
      input: TOPICS.deposits,
      inputCodec: depositCodec,
      actor: balanceActor(limits),
      table: balanceTableCodec,
      keyOf: (d) => d.walletId,
      identity: depositIdentity,
      conflictCode: "deposit_id_reused_with_different_amount",
      emit: noEmits,
    }),
    threshold: define({
      name: "threshold",
      input: TOPICS.deposits,
      inputCodec: depositCodec,
      actor: thresholdActor({ ...config.threshold, depositAmountMaxMinor: config.depositAmountMaxMinor }),
      table: thresholdTableCodec,
      keyOf: (d) => d.walletId,
      identity: depositIdentity,
      conflictCode: "deposit_id_reused_with_different_amount",
      emit: (flag: FlagChange) => ({ topic: TOPICS.flags, key: flag.walletId, value: flagCodec.encode(flag) }),
    }),
    flagger: define({
      name: "flagger",
      input: TOPICS.flags,
      inputCodec: flagCodec,
      actor: flaggerActor,
      table: flaggerTableCodec,
      keyOf: (f) => f.walletId,
      identity: (f) => ({ id: f.eventId, fingerprint: `flagged=${f.flagged},reason=${f.reason}` }),
      conflictCode: "event_id_reused_with_different_content",
      emit: noEmits,
    }),
  };
}

/**
 * Every topic, co-partitioned: the inputs, and per group its compacted changelog
 * `<group>-table`. The changelog holds the table (keyed by wallet) and the event ids
 * the group applied (keyed by [wallet, id], header kind=applied), from which another
 * instance restores both.
 */
export function topicSpecs(partitions: number): TopicSpec[] {
  return [
    { name: TOPICS.deposits, partitions },
    { name: TOPICS.flags, partitions },
    ...GROUP_NAMES.map((group) => ({ name: TOPICS.table(group), partitions, compacted: true })),
  ];
}

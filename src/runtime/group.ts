import type { DescMessage } from "@bufbuild/protobuf";
import type { Actor, FiredTimer } from "../../actors/types.js";
import type { Config } from "../config.js";
import type { TopicSpec } from "../log/log.js";
import type { Codec } from "./codec.js";
import { TIMER_SCOPE, timerTopic } from "./timers.js";
import { changelogTopic, deadLetterTopic, type Topic } from "./topic.js";

// A topic whatever its value type: codecs make Topic invariant in it.
// biome-ignore lint: erased on purpose.
export type AnyTopic = Topic<any>;

/** One input of a group: a topic, and how its values become the actor's input. */
export interface Input<In> {
  readonly topic: AnyTopic;
  /** The actor's input, or undefined for a value this group does not read (skipped, its id not bound). */
  event(value: unknown): In | undefined;
  /**
   * Event ids of this input are kept apart from those of the group's other inputs:
   * stored as "\u001f<scope>:<id>", which no client id can be (ids hold no control
   * characters). For an input whose ids are not the wallet's operation ids.
   */
  readonly scope?: string;
}

/**
 * Declares an input: `on(deposits, (d) => ({ kind: "deposit", ...d }))`. The mapping
 * may return undefined to skip a value (a group that reads only some kinds of a topic).
 */
export function on<T, In>(topic: Topic<T>, event: (value: T) => In | undefined, options: { scope?: string } = {}): Input<In> {
  return { topic, event: event as (value: unknown) => In | undefined, ...options };
}

/** The id under which an input's event is applied: scoped inputs keep theirs apart. */
export function scopedId(input: Pick<Input<unknown>, "scope">, id: string): string {
  return input.scope === undefined ? id : `\u001f${input.scope}:${id}`;
}

/** A value an actor emits, bound to its topic; the runtime keys and routes it. */
export interface Emission {
  readonly topic: AnyTopic;
  readonly value: unknown;
}

export function to<T>(topic: Topic<T>, value: T): Emission {
  return { topic, value };
}

/**
 * What a group keeps of each decision with the event's id, such as an operation and
 * the ledger entry it wrote. It travels in the changelog with the id, so restores and
 * views have it; actors read it back through their context.
 */
export interface Records<R> {
  readonly codec: Codec<R>;
  /** The protobuf message of a record, for `inspect`. */
  readonly schema: DescMessage;
  /** The ledger entry a record wrote, if any: its number, and when it was recorded. */
  entry(record: R): { seq: number; recordedMs: number } | undefined;
  /**
   * An emitted topic whose values are a function of the records (the ledger's entries):
   * a batch record does not carry them as output, and a restoring instance that must
   * send a batch's output again derives them from the batch's records instead, which
   * saves the changelog a second copy of every entry.
   */
  readonly derived?: { readonly topic: AnyTopic; emit(walletId: string, eventId: string, record: R): unknown | undefined };
}

/** A group's table: one value per wallet, and its protobuf message for `inspect`. */
export interface Table<S> {
  readonly codec: Codec<S>;
  readonly schema: DescMessage;
}

/**
 * A processor group, declared once as a value in a file of its own (Goka's
 * DefineGroup, Restate's object()): its name, its input topics, its table, the topics
 * it emits to, and whether the API keeps a view of it. Everything else (topic specs,
 * `processor` flags, `inspect`, views) is derived from the list of groups.
 */
export interface GroupSpec<S, In, Out, R = never> {
  /** The consumer group, and the table's name: its changelog is `<name>-table`. */
  readonly name: string;
  /** One line for `processor --help`. */
  readonly description: string;
  /** Further `processor` flags that select the group (the seed's names, such as collector). */
  readonly aliases?: readonly string[];
  readonly inputs: readonly Input<In>[];
  readonly table: Table<S>;
  /** Every topic the actor may emit to. An emit to another topic crashes the process. */
  readonly emits: readonly AnyTopic[];
  /** Whether the API keeps a view of the table. */
  readonly view: boolean;
  /** What the group keeps of each decision, if anything beyond the outcome. */
  readonly records?: Records<R>;
  actor(config: Config): Actor<S, In, Out, R>;
  /** Binds an output of the actor to one of `emits`. */
  emit(out: Out): Emission;
  /**
   * For a group whose actor sets timers: the actor's input for a timer that came due.
   * The group then also reads its topic `<group>-timers` (see src/runtime/timers.ts).
   */
  onTimer?(fired: FiredTimer): In;
}

export interface Group<S, In, Out, R = never> extends GroupSpec<S, In, Out, R> {
  readonly changelog: string;
  /** The topic of due timers, for a group with `onTimer`; it is also one of `inputs`. */
  readonly timers?: Topic<FiredTimer>;
}

// The runtime treats every group alike; the state, input and output types stay
// inside the group's file and its actor.
// biome-ignore lint: erased on purpose.
export type AnyGroup = Group<any, any, any, any>;

const NAME = /^[a-z][a-z0-9-]{0,62}$/;

/**
 * Declares a group and validates it, like a Goka group graph at construction: a group
 * without input, with an input or emit listed twice, or with a malformed name, is a
 * programmer error and stops the process at start-up with a message that says which.
 */
export function defineGroup<S, In, Out, R = never>(spec: GroupSpec<S, In, Out, R>): Group<S, In, Out, R> {
  const where = `group ${JSON.stringify(spec.name)}`;
  if (!NAME.test(spec.name)) throw new Error(`${where}: the name must match ${NAME}`);
  if (spec.inputs.length === 0) throw new Error(`${where} has no input topic`);
  const inputs = spec.inputs.map((i) => i.topic.name);
  const twice = (names: string[]) => names.find((n, i) => names.indexOf(n) !== i);
  if (twice(inputs)) throw new Error(`${where} lists input topic ${twice(inputs)} twice`);
  const emits = spec.emits.map((t) => t.name);
  if (twice(emits)) throw new Error(`${where} lists emitted topic ${twice(emits)} twice`);
  for (const alias of spec.aliases ?? []) {
    if (!NAME.test(alias)) throw new Error(`${where}: alias ${JSON.stringify(alias)} must match ${NAME}`);
  }
  if (spec.onTimer === undefined) return Object.freeze({ ...spec, changelog: changelogTopic(spec.name) });
  const timers = timerTopic(spec.name);
  if (inputs.includes(timers.name)) throw new Error(`${where} lists its own timer topic ${timers.name} as an input`);
  const onTimer = spec.onTimer;
  const inputsWithTimers = [...spec.inputs, on(timers, (fired) => onTimer(fired), { scope: TIMER_SCOPE })];
  return Object.freeze({ ...spec, inputs: inputsWithTimers, changelog: changelogTopic(spec.name), timers });
}

/**
 * Validates a list of groups as a whole: names and flags are unique, a topic name
 * means one declaration, and no declared topic takes a name the runtime derives
 * (`<group>-table`, `<topic>.dlq`).
 */
export function validateGroups(groups: readonly AnyGroup[]): void {
  const flags = new Map<string, string>();
  for (const group of groups) {
    for (const flag of [group.name, ...(group.aliases ?? [])]) {
      const holder = flags.get(flag);
      if (holder !== undefined) throw new Error(`groups ${holder} and ${group.name} both answer to ${flag}`);
      flags.set(flag, group.name);
    }
  }
  const declared = new Map<string, AnyTopic>();
  for (const topic of groups.flatMap((g) => [...g.inputs.map((i) => i.topic), ...g.emits])) {
    const other = declared.get(topic.name);
    if (other !== undefined && other !== topic) throw new Error(`topic ${topic.name} is declared twice, differently`);
    declared.set(topic.name, topic);
  }
  const derived = new Set([...groups.map((g) => g.changelog), ...[...declared.keys()].map(deadLetterTopic)]);
  for (const group of groups) if (group.timers) declared.delete(group.timers.name);
  for (const name of declared.keys()) {
    if (derived.has(name)) throw new Error(`topic ${name} takes a name the runtime derives for a changelog or dead letters`);
  }
}

/** Every topic a set of groups reads or writes: declared topics, changelogs, dead letters. */
export function topicSpecs(groups: readonly AnyGroup[], partitions: number): TopicSpec[] {
  const specs = new Map<string, TopicSpec>();
  for (const group of groups) {
    for (const input of group.inputs) {
      specs.set(input.topic.name, { name: input.topic.name, partitions });
      specs.set(deadLetterTopic(input.topic.name), { name: deadLetterTopic(input.topic.name), partitions });
    }
    for (const topic of group.emits) specs.set(topic.name, { name: topic.name, partitions });
    specs.set(group.changelog, { name: group.changelog, partitions, compacted: true });
  }
  return [...specs.values()];
}

/** The groups a `processor` command line selects, by name or alias; all when none is named. */
export function selectGroups(groups: readonly AnyGroup[], flags: readonly string[]): AnyGroup[] {
  if (flags.length === 0) return [...groups];
  return groups.filter((g) => [g.name, ...(g.aliases ?? [])].some((flag) => flags.includes(flag)));
}

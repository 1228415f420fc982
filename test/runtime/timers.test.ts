// Timers: an actor sets and clears timers; a due timer comes back as an event, decided
// once, under crashes at every fault point, restarts on another instance (the index of
// pending timers restored from the changelog), redelivery and a clock that jumps. A
// model says which timers must fire; each must fire exactly once, never before it is
// due, and a cleared one never.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import type { Actor, FiredTimer } from "../../actors/types.js";
import { DeadLetterSchema } from "../../src/gen/depositaja/v1/runtime_pb.js";
import { defineGroup, on, to, topicSpecs } from "../../src/runtime/group.js";
import type { FaultPoints } from "../../src/runtime/processor.js";
import { timerTopicName } from "../../src/runtime/timers.js";
import { defineTopic } from "../../src/runtime/topic.js";
import { Harness, jsonCodec, PARTITIONS, type Mode } from "./harness.js";
import { readTopic } from "../support.js";

/** Set timer `timer` of `wallet` for `dueMs`, or clear it (dueMs null). */
interface Ask {
  id: string;
  wallet: string;
  timer: string;
  dueMs: number | null;
}
interface Ring {
  wallet: string;
  timer: string;
  dueMs: number;
  firedAtMs: number;
}
type In = { type: "ask"; ask: Ask } | { type: "fired"; fired: FiredTimer };
interface State {
  /** Firings per timer id and due time. */
  fired: Record<string, number>;
  early: string[];
}

const asks = defineTopic<Ask>({
  name: "asks",
  codec: jsonCodec,
  schema: DeadLetterSchema,
  key: (a) => a.wallet,
  identity: (a) => ({ id: a.id, fingerprint: `${a.timer}=${a.dueMs}` }),
  conflictCode: "ask_id_reused",
});
const rings = defineTopic<Ring>({
  name: "rings",
  codec: jsonCodec,
  schema: DeadLetterSchema,
  key: (r) => r.wallet,
  identity: (r) => ({ id: `${r.timer}@${r.dueMs}`, fingerprint: "" }),
  conflictCode: "ring_id_reused",
});

const reminderActor: Actor<State, In, Ring> = {
  name: "reminder",
  initial: () => ({ fired: {}, early: [] }),
  handle(state, input, context) {
    if (input.type === "ask") return { state, emits: [], timers: [{ id: input.ask.timer, dueMs: input.ask.dueMs }] };
    const { walletId, timerId, dueMs } = input.fired;
    const key = `${timerId}@${dueMs}`;
    return {
      state: { fired: { ...state.fired, [key]: (state.fired[key] ?? 0) + 1 }, early: context.nowMs < dueMs ? [...state.early, key] : state.early },
      emits: [{ wallet: walletId, timer: timerId, dueMs, firedAtMs: context.nowMs }],
    };
  },
};

const reminder = defineGroup<State, In, Ring>({
  name: "reminder",
  description: "rings each timer it was asked to set",
  inputs: [on(asks, (ask): In => ({ type: "ask", ask }))],
  table: { codec: jsonCodec, schema: DeadLetterSchema },
  emits: [rings],
  view: false,
  actor: () => reminderActor,
  emit: (ring) => to(rings, ring),
  onTimer: (fired): In => ({ type: "fired", fired }),
});

const WALLETS = ["w0", "w1", "w2", "w3", "w4"];
const T0 = Date.UTC(2026, 0, 1);

type Action =
  | { type: "ask"; wallet: number; timer: number; dueIn: number | null }
  | { type: "advance"; ms: number }
  | { type: "step"; crashAt?: keyof FaultPoints }
  | { type: "move" };

const actionArb = (mode: Mode): fc.Arbitrary<Action> =>
  fc.oneof(
    { weight: 4, arbitrary: fc.record({ type: fc.constant("ask" as const), wallet: fc.nat(WALLETS.length - 1), timer: fc.nat(3), dueIn: fc.option(fc.integer({ min: -50, max: 400 }), { freq: 4 }) }) },
    { weight: 3, arbitrary: fc.record({ type: fc.constant("advance" as const), ms: fc.integer({ min: 0, max: 300 }) }) },
    { weight: 4, arbitrary: fc.record({ type: fc.constant("step" as const), crashAt: fc.option(fc.constantFrom<keyof FaultPoints>("beforeCommit", "afterCommit", "afterPublish"), { nil: undefined, freq: 2 }) }) },
    ...(mode === "outbox" ? [{ weight: 1, arbitrary: fc.constant({ type: "move" as const }) }] : []),
  );

async function run(mode: Mode, actions: Action[]): Promise<void> {
  const h = new Harness(mode, [reminder]);
  h.nowMs = T0;
  try {
    await h.init();
    /** The model: each wallet's pending timers, and every (wallet, timer@due) that must fire. */
    const pending = new Map<string, number>();
    const due = new Set<string>();
    let seq = 0;
    for (const action of actions) {
      switch (action.type) {
        case "ask": {
          const wallet = WALLETS[action.wallet]!;
          const timer = `t${action.timer}`;
          const dueMs = action.dueIn === null ? null : h.nowMs! + action.dueIn;
          await h.log.produce([{ topic: asks.name, key: wallet, value: asks.codec.encode({ id: `a${seq++}`, wallet, timer, dueMs }) }]);
          const key = `${wallet}/${timer}`;
          // Setting a timer that was pending replaces it: the old due time never fires.
          if (dueMs === null) pending.delete(key);
          else pending.set(key, dueMs);
          break;
        }
        case "advance":
          h.nowMs! += action.ms;
          // What was pending and is due by now must fire, whenever the processor gets to it.
          break;
        case "step":
          await h.step("reminder", action.crashAt);
          break;
        case "move":
          await h.moveToNewInstance();
          break;
      }
    }
    // At rest: the clock far ahead, every pending timer fires.
    h.nowMs! += 10_000;
    await h.drain();
    await h.drain();
    for (const [key, dueMs] of pending) due.add(`${key}@${dueMs}`);

    const fired = new Map<string, number>();
    const early: string[] = [];
    for (const wallet of WALLETS) {
      const row = h.store.row("reminder", wallet);
      const state: State = row ? jsonCodec.decode(row.value) : { fired: {}, early: [] };
      for (const [key, count] of Object.entries(state.fired)) fired.set(`${wallet}/${key}`, count);
      early.push(...state.early);
    }
    expect(early).toEqual([]);
    // Every timer pending at the end fired exactly once.
    for (const key of due) expect([key, fired.get(key)]).toEqual([key, 1]);
    // Nothing fired twice, whatever fired earlier on.
    for (const [key, count] of fired) expect([key, count]).toEqual([key, 1]);
    // No timer is left pending.
    for (let partition = 0; partition < PARTITIONS; partition++) expect(h.store.dueTimers("reminder", partition, Number.MAX_SAFE_INTEGER, 100)).toEqual([]);
    // Every firing the state counts was emitted (with duplicates only from a re-sent outbox).
    const emitted = new Set((await readTopic(h.log, rings.name)).map((r) => {
      const ring = rings.codec.decode(r.value);
      return `${ring.wallet}/${ring.timer}@${ring.dueMs}`;
    }));
    expect([...emitted].sort()).toEqual([...fired.keys()].sort());
  } finally {
    h.close();
  }
}

describe("timers", () => {
  test("the group reads its own timer topic, which is created with the others", () => {
    expect(reminder.inputs.map((i) => i.topic.name)).toEqual(["asks", timerTopicName("reminder")]);
    expect(topicSpecs([reminder], 3).map((s) => s.name)).toContain("reminder-timers");
  });

  test("a timer fires once, at or after its due time, and a cleared one never", async () => {
    const h = new Harness("shared", [reminder]);
    h.nowMs = T0;
    try {
      await h.init();
      const ask = (id: string, timer: string, dueMs: number | null) => h.log.produce([{ topic: asks.name, key: "w0", value: asks.codec.encode({ id, wallet: "w0", timer, dueMs }) }]);
      await ask("a1", "t1", T0 + 1_000);
      await ask("a2", "t2", T0 + 1_000);
      await ask("a3", "t2", null);
      await ask("a4", "t3", T0 + 500);
      await ask("a5", "t3", T0 + 2_000);
      await h.drain();
      expect(h.store.timer("reminder", "w0", "t1")).toBe(T0 + 1_000);
      expect(h.store.timer("reminder", "w0", "t2")).toBeUndefined();
      h.nowMs = T0 + 999;
      await h.drain();
      expect(await readTopic(h.log, rings.name)).toHaveLength(0);
      h.nowMs = T0 + 1_500;
      await h.drain();
      const out = (await readTopic(h.log, rings.name)).map((r) => rings.codec.decode(r.value));
      // t3 was set anew before its first due time: only the second fires, later.
      expect(out).toEqual([{ wallet: "w0", timer: "t1", dueMs: T0 + 1_000, firedAtMs: T0 + 1_500 }]);
      expect(h.store.timer("reminder", "w0", "t3")).toBe(T0 + 2_000);
      expect(h.store.timer("reminder", "w0", "t1")).toBeUndefined();
      // A firing produced again (an instance that crashed before it saw the first
      // come back) is skipped: the timer is no longer pending.
      const again = { walletId: "w0", timerId: "t1", dueMs: T0 + 1_000 };
      await h.log.produce([{ topic: "reminder-timers", key: "w0", value: reminder.timers!.codec.encode(again) }]);
      await h.drain();
      expect(await readTopic(h.log, rings.name)).toHaveLength(1);
      h.nowMs = T0 + 2_000;
      await h.drain();
      expect((await readTopic(h.log, rings.name)).map((r) => rings.codec.decode(r.value).timer)).toEqual(["t1", "t3"]);
    } finally {
      h.close();
    }
  });

  for (const mode of ["shared", "outbox"] as const) {
    test(`model: each pending timer fires exactly once under crashes and moves (${mode})`, async () => {
      await fc.assert(fc.asyncProperty(fc.array(actionArb(mode), { minLength: 1, maxLength: 40 }), (actions) => run(mode, actions)), { numRuns: 150 });
    }, 120_000);
  }
});

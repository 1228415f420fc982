// A group that forwards events to other wallets, across partitions, under crashes: the
// runtime routes each emit to its key's partition, and a model checks that every
// forward arrives, and counts, exactly once.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import type { Actor } from "../../actors/types.js";
import { DeadLetterSchema } from "../../src/gen/depositaja/v1/runtime_pb.js";
import { partitionForKey } from "../../src/log/murmur2.js";
import { defineGroup, on, to } from "../../src/runtime/group.js";
import type { FaultPoints } from "../../src/runtime/processor.js";
import { defineTopic } from "../../src/runtime/topic.js";
import { Harness, PARTITIONS, type Mode, jsonCodec } from "./harness.js";

/** A hop of a relay: `amount` for `wallet`, then `hopsLeft` more hops along the ring. */
interface Hop {
  id: string;
  wallet: string;
  amount: number;
  hopsLeft: number;
}

const json = jsonCodec;

// Test topics carry JSON; the schema is what `inspect` would print them with, unused here.
const hops = defineTopic<Hop>({
  name: "hops",
  codec: json,
  schema: DeadLetterSchema,
  key: (h) => h.wallet,
  identity: (h) => ({ id: h.id, fingerprint: `${h.amount}/${h.hopsLeft}` }),
  conflictCode: "hop_id_reused",
});

// A ring of wallets that spans every partition, so most hops cross one.
const RING = ["w0", "w1", "w2", "w3", "w4", "w5", "w6", "w7"];
const next = (wallet: string) => RING[(RING.indexOf(wallet) + 1) % RING.length]!;

interface Received {
  total: number;
  hops: number;
}

const relayActor: Actor<Received, Hop, Hop> = {
  name: "relay",
  initial: () => ({ total: 0, hops: 0 }),
  handle: (state, hop) => ({
    state: { total: state.total + hop.amount, hops: state.hops + 1 },
    // The forward's id derives from the hop's: a redelivered hop forwards the same id.
    emits: hop.hopsLeft > 0 ? [{ id: `${hop.id}>`, wallet: next(hop.wallet), amount: hop.amount, hopsLeft: hop.hopsLeft - 1 }] : [],
  }),
};

const relay = defineGroup<Received, Hop, Hop>({
  name: "relay",
  description: "forwards each hop to the next wallet of the ring",
  inputs: [on(hops, (h) => h)],
  table: { codec: json, schema: DeadLetterSchema },
  emits: [hops],
  view: false,
  actor: () => relayActor,
  emit: (hop) => to(hops, hop),
});

/** What every wallet must have received: each distinct hop id counted once, along its path. */
function model(started: Hop[]): Map<string, Received> {
  const out = new Map<string, Received>();
  const seen = new Set<string>();
  for (const first of started) {
    if (seen.has(`${first.wallet}/${first.id}`)) continue;
    seen.add(`${first.wallet}/${first.id}`);
    let hop: Hop | undefined = first;
    while (hop) {
      const r = out.get(hop.wallet) ?? { total: 0, hops: 0 };
      out.set(hop.wallet, { total: r.total + hop.amount, hops: r.hops + 1 });
      hop = hop.hopsLeft > 0 ? { id: `${hop.id}>`, wallet: next(hop.wallet), amount: hop.amount, hopsLeft: hop.hopsLeft - 1 } : undefined;
    }
  }
  return out;
}

function received(h: Harness): Map<string, Received> {
  const out = new Map<string, Received>();
  for (const wallet of RING) {
    const row = h.store.row("relay", wallet);
    if (row) out.set(wallet, relay.table.codec.decode(row.value) as Received);
  }
  return out;
}

const hop = fc.record({
  id: fc.constantFrom("a", "b", "c", "d"),
  wallet: fc.constantFrom(...RING),
  amount: fc.integer({ min: 1, max: 100 }),
  hopsLeft: fc.integer({ min: 0, max: 9 }),
});

type Command =
  | { kind: "start"; hops: Hop[] }
  | { kind: "step" }
  | { kind: "crash"; at: keyof FaultPoints }
  | { kind: "transient" }
  | { kind: "move" };

function commands(mode: Mode): fc.Arbitrary<Command[]> {
  const kinds: fc.Arbitrary<Command>[] = [
    fc.record({ kind: fc.constant("start" as const), hops: fc.array(hop, { minLength: 1, maxLength: 3 }) }),
    fc.constant({ kind: "step" as const }),
    fc.record({ kind: fc.constant("crash" as const), at: fc.constantFrom<keyof FaultPoints>("beforeCommit", "afterCommit", "afterPublish") }),
    fc.constant({ kind: "transient" as const }),
  ];
  // On Kafka's terms a partition may also move to an instance with an empty store.
  if (mode === "outbox") kinds.push(fc.constant({ kind: "move" as const }));
  return fc.array(fc.oneof(...kinds), { minLength: 1, maxLength: 25 });
}

describe("emits routed by key, across partitions", () => {
  test("the ring spans every partition", () => {
    expect(new Set(RING.map((w) => partitionForKey(w, PARTITIONS))).size).toBe(PARTITIONS);
  });

  for (const mode of ["shared", "outbox"] as Mode[]) {
    test(`${mode}: every forward arrives and counts exactly once, through crashes between commit and produce`, async () => {
      await fc.assert(
        fc.asyncProperty(commands(mode), async (script) => {
          const h = new Harness(mode, [relay]);
          const started: Hop[] = [];
          try {
            await h.init();
            for (const c of script) {
              if (c.kind === "start") {
                await h.log.produce(c.hops.map((x) => ({ topic: hops.name, key: x.wallet, value: hops.codec.encode(x) })));
                started.push(...c.hops);
              } else if (c.kind === "step") await h.step("relay");
              else if (c.kind === "crash") await h.step("relay", c.at);
              else if (c.kind === "transient") await h.stepWithTransientFailure("relay");
              else await h.moveToNewInstance();
            }
            await h.drain();
            expect(received(h)).toEqual(model(started));
            // Each forward landed in the partition of the wallet it is for.
            for (let partition = 0; partition < PARTITIONS; partition++) {
              for (const record of h.log.read({ topic: hops.name, partition, offset: 0 }, 10_000)) {
                expect(partitionForKey(record.key, PARTITIONS)).toBe(partition);
              }
            }
          } finally {
            h.close();
          }
        }),
        { numRuns: 300 },
      );
    }, 300_000);
  }
});

// Records that cannot be processed go to <topic>.dlq, in the commit of their batch,
// with the original bytes, key and headers, the reason and where they came from; the
// partition goes on. A broken invariant is different: it stops the processor.
import { describe, expect, test } from "bun:test";
import type { Actor } from "../../actors/types.js";
import type { WalletCommand } from "../../actors/wallet.js";
import { balance, threshold } from "../../src/groups/index.js";
import { partitionForKey } from "../../src/log/murmur2.js";
import { batchRecord, rowRecord } from "../../src/runtime/changelog.js";
import { decodeDeadLetter } from "../../src/runtime/dead-letter.js";
import { AssertionError, assert } from "../../src/runtime/errors.js";
import { defineGroup, on } from "../../src/runtime/group.js";
import { defineTopic } from "../../src/runtime/topic.js";
import { restorePartitions } from "../../src/runtime/restore.js";
import { ChangelogView } from "../../src/runtime/view.js";
import { commands } from "../../src/topics/commands.js";
import { deposits } from "../../src/topics/deposits.js";
import { config, Harness, PARTITIONS, type Mode } from "./harness.js";

const wallet = "alice";
const partition = partitionForKey(wallet, PARTITIONS);
const deposit = (id: string, amountMinor: bigint) => ({
  topic: deposits.name,
  key: wallet,
  value: deposits.codec.encode({ depositId: id, walletId: wallet, amountMinor, eventTimeMs: 0 }),
});
const balanceOf = (h: Harness) => balance.table.codec.decode(h.store.row("balance", wallet)!.value).balanceMinor;
const deadLetters = (h: Harness) => h.log.read({ topic: "deposits.dlq", partition, offset: 0 }, 100).map((r) => decodeDeadLetter(r.value));

for (const mode of ["shared", "outbox"] as Mode[]) {
  describe(`dead letters (${mode})`, () => {
    test("a record that does not decode is dead-lettered with its bytes, and the deposits after it are applied", async () => {
      const h = new Harness(mode, [balance]);
      try {
        await h.init();
        const poison = new Uint8Array([0xff, 0xff, 0xff, 0x01]);
        await h.log.produce([deposit("d1", 100n), { topic: deposits.name, key: wallet, value: poison, headers: { source: "kcat" } }, deposit("d2", 50n)]);
        await h.drain();
        expect(balanceOf(h)).toBe(150n);
        const [letter, ...more] = deadLetters(h);
        expect(more).toEqual([]);
        expect(letter).toMatchObject({
          key: wallet,
          group: "balance",
          reasonCode: "undecodable",
          sourceTopic: "deposits",
          sourcePartition: partition,
          sourceOffset: 1n,
          headers: { source: "kcat" },
        });
        expect(letter!.value).toEqual(poison);
        expect(letter!.reason).toContain("not a valid protobuf message");
      } finally {
        h.close();
      }
    });

    test("an id a group skipped (a withdrawal, for the detector) is bound: a deposit reusing it is a conflict there too", async () => {
      const h = new Harness(mode, [balance, threshold]);
      try {
        await h.init();
        const common = { walletId: wallet, eventTimeMs: 0, description: "", reference: "" };
        const command = (c: WalletCommand) => ({ topic: commands.name, key: wallet, value: commands.codec.encode(c) });
        await h.log.produce([
          command({ ...common, operationId: "k", kind: "withdrawal", amountMinor: 1n }),
          command({ ...common, operationId: "k", kind: "deposit", amountMinor: 5_000_000n }),
        ]);
        await h.drain();
        const letters = h.log.read({ topic: "commands.dlq", partition, offset: 0 }, 100).map((r) => decodeDeadLetter(r.value));
        expect(letters.map((l) => [l.group, l.reasonCode]).sort()).toEqual([["balance", "idempotency_key_reused"], ["threshold", "idempotency_key_reused"]]);
        // The detector counted nothing: no window, no flag.
        const detector = threshold.table.codec.decode(h.store.row("threshold", wallet)?.value ?? threshold.table.codec.encode(threshold.actor(config).initial()));
        expect(detector.entries).toEqual([]);
        expect(h.store.appliedEvent("threshold", wallet, "k")?.outcome).toBe("skipped");
      } finally {
        h.close();
      }
    });

    test("an amount no producer may send is refused by the actor as terminal: dead-lettered, its id left free", async () => {
      const h = new Harness(mode, [balance]);
      try {
        await h.init();
        await h.log.produce([deposit("d1", 0n), deposit("d1", 70n)]);
        await h.drain();
        expect(deadLetters(h).map((l) => l.reasonCode)).toEqual(["amount_must_be_positive"]);
        // The refused record did not bind its id: the corrected one counts.
        expect(balanceOf(h)).toBe(70n);
      } finally {
        h.close();
      }
    });

    test("a dead letter is written once, however often its batch is redone", async () => {
      const h = new Harness(mode, [balance]);
      try {
        await h.init();
        await h.log.produce([{ topic: deposits.name, key: wallet, value: new Uint8Array([0xff]) }, deposit("d1", 5n)]);
        await h.step("balance", "beforeCommit");
        await h.step("balance", "beforeCommit");
        await h.drain();
        expect(deadLetters(h)).toHaveLength(1);
        expect(balanceOf(h)).toBe(5n);
      } finally {
        h.close();
      }
    });
  });
}

interface Poke {
  id: string;
  wallet: string;
  mood: "fine" | "throws" | "breaks";
}

/** An actor with a bug for one input, and an invariant another input breaks. */
const pokeActor: Actor<{ count: number }, Poke, never> = {
  name: "poke",
  initial: () => ({ count: 0 }),
  handle(state, poke) {
    if (poke.mood === "throws") throw new TypeError("cannot read properties of undefined");
    assert(poke.mood !== "breaks", "a poke never breaks");
    return { state: { count: state.count + 1 }, emits: [] };
  },
};

describe("an actor that throws", () => {
  const json = {
    encode: (v: Poke) => new TextEncoder().encode(JSON.stringify(v)),
    decode: (b: Uint8Array) => JSON.parse(new TextDecoder().decode(b)) as Poke,
  };
  // The schema is only what `inspect` would print the topic with.
  const topic = defineTopic<Poke>({ name: "pokes", codec: json, schema: balance.table.schema, key: (p) => p.wallet, identity: (p) => ({ id: p.id, fingerprint: p.mood }), conflictCode: "poke_id_reused" });
  const group = defineGroup<{ count: number }, Poke, never>({
    name: "poke",
    description: "test",
    inputs: [on(topic, (p) => p)],
    table: { codec: { encode: (s) => json.encode(s as never), decode: (b) => JSON.parse(new TextDecoder().decode(b)) }, schema: balance.table.schema },
    emits: [],
    view: false,
    actor: () => pokeActor,
    emit: (out) => out,
  });
  const poke = (id: string, mood: Poke["mood"]) => ({ topic: "pokes", key: wallet, value: json.encode({ id, wallet, mood }) });

  test("on one record is refusing that record: dead-lettered as actor_failed, and the partition goes on", async () => {
    const h = new Harness("shared", [group]);
    try {
      await h.init();
      await h.log.produce([poke("1", "fine"), poke("2", "throws"), poke("3", "fine")]);
      await h.drain();
      expect(JSON.parse(new TextDecoder().decode(h.store.row("poke", wallet)!.value))).toEqual({ count: 2 });
      const letters = h.log.read({ topic: "pokes.dlq", partition, offset: 0 }, 10).map((r) => decodeDeadLetter(r.value));
      expect(letters.map((l) => [l.reasonCode, l.sourceOffset])).toEqual([["actor_failed", 1n]]);
      expect(letters[0]!.reason).toContain("cannot read properties of undefined");
    } finally {
      h.close();
    }
  });

  test("with a broken invariant stops the processor, and nothing of its batch is committed", async () => {
    const h = new Harness("shared", [group]);
    try {
      await h.init();
      await h.log.produce([poke("1", "fine"), poke("2", "breaks")]);
      const processor = h.processors.get("poke")!;
      processor.start();
      await expect(processor.done).rejects.toBeInstanceOf(AssertionError);
      expect(h.store.row("poke", wallet)).toBeUndefined();
      expect(h.store.progress("poke", { topic: "pokes", partition })).toBe(0);
    } finally {
      h.close();
    }
  });
});

describe("a view fed a changelog record that does not decode", () => {
  test("skips it, counts it, and keeps the wallet's last good value", async () => {
    const h = new Harness("outbox", [balance]);
    try {
      await h.init();
      await h.log.produce([deposit("d1", 100n)]);
      await h.drain();
      // A record on balance-table that is no changelog record, and one whose row is no
      // balance: each would otherwise turn GET /check for this wallet into a 500.
      await h.log.produce([
        { topic: "balance-table", key: wallet, partition, value: new Uint8Array([0xff, 0xff]) },
        { topic: "balance-table", key: wallet, partition, value: rowRecord(wallet, new Uint8Array([0xff]), 99).value },
      ]);
      const view = new ChangelogView(balance, h.log, h.store);
      for (let i = 0; i < 3; i++) await view.step(0);
      expect(view.skippedCount).toBe(2);
      expect(view.get(wallet)?.balanceMinor).toBe(100n);
    } finally {
      h.close();
    }
  });

  test("a decision record that does not decode is dropped, and its id kept: the view and a restore go on", async () => {
    const h = new Harness("outbox", [balance]);
    try {
      await h.init();
      const through = new Map([["commands", 1], ["deposits", 0], ["flags", 0]]);
      const from = new Map([["commands", 0], ["deposits", 0], ["flags", 0]]);
      const bad = batchRecord(from, through, [{ walletId: wallet, eventId: "op-1", fingerprint: "amount_minor=5", outcome: "applied", detail: new Uint8Array([0xff, 0xff]) }]);
      await h.log.produce([{ topic: "balance-table", key: bad.key, partition, value: bad.value }]);
      const view = new ChangelogView(balance, h.log, h.newStore());
      for (let i = 0; i < 3; i++) await view.step(0);
      expect(view.skippedCount).toBe(1);
      expect(view.applied(wallet, "op-1")).toEqual({ eventId: "op-1", fingerprint: "amount_minor=5", outcome: "applied", record: undefined });
      // A processor that restores the partition keeps the id: the event counts once.
      const store = h.newStore();
      await restorePartitions(balance, h.log, store, [partition]);
      expect(store.appliedEvent("balance", wallet, "op-1")).toMatchObject({ fingerprint: "amount_minor=5", outcome: "applied", detail: null });
    } finally {
      h.close();
    }
  });
});

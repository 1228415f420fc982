// A group is declared once, as a value, and validated at construction: a mistake in a
// declaration stops the process at start-up with a message that names it.
import { describe, expect, test } from "bun:test";
import type { Actor } from "../../actors/types.js";
import { DeadLetterSchema } from "../../src/gen/depositaja/v1/runtime_pb.js";
import { balance, flagger, GROUPS, threshold, users } from "../../src/groups/index.js";
import { topicCatalog } from "../../src/runtime/catalog.js";
import { AssertionError } from "../../src/runtime/errors.js";
import { defineGroup, on, selectGroups, to, topicSpecs, validateGroups, type GroupSpec } from "../../src/runtime/group.js";
import { defineTopic, type Topic } from "../../src/runtime/topic.js";
import { commands } from "../../src/topics/commands.js";
import { deposits } from "../../src/topics/deposits.js";
import type { DecodeError } from "../../src/runtime/codec.js";
import { Harness, jsonCodec } from "./harness.js";

interface Note {
  id: string;
  wallet: string;
}

const json = jsonCodec;

const topic = (name: string): Topic<Note> =>
  defineTopic<Note>({ name, codec: json, schema: DeadLetterSchema, key: (n) => n.wallet, identity: (n) => ({ id: n.id, fingerprint: "" }), conflictCode: "note_id_reused" });
const notes = topic("notes");
const echoes = topic("echoes");
const noActor: Actor<null, Note, Note> = { name: "x", initial: () => null, handle: (s, n) => ({ state: s, emits: [n] }) };

function spec(overrides: Partial<GroupSpec<null, Note, Note>>): GroupSpec<null, Note, Note> {
  return {
    name: "notes-group",
    description: "test",
    inputs: [on(notes, (n) => n)],
    table: { codec: json, schema: DeadLetterSchema },
    emits: [],
    view: false,
    actor: () => noActor,
    emit: (n) => to(echoes, n),
    ...overrides,
  };
}

describe("defineGroup", () => {
  test.each([
    ["no input", { inputs: [] }, /has no input topic/],
    ["an input listed twice", { inputs: [on(notes, (n: Note) => n), on(notes, (n: Note) => n)] }, /lists input topic notes twice/],
    ["an emit listed twice", { emits: [echoes, echoes] }, /lists emitted topic echoes twice/],
    ["a name that cannot be a topic", { name: "Notes Group" }, /the name must match/],
    ["a bad alias", { aliases: ["--x"] }, /alias "--x" must match/],
  ])("refuses %s", (_, overrides, message) => {
    expect(() => defineGroup(spec(overrides as Partial<GroupSpec<null, Note, Note>>))).toThrow(message);
  });

  test("a topic name is checked where the topic is declared", () => {
    expect(() => topic("Deposits!")).toThrow(/topic name "Deposits!" must match/);
  });
});

describe("validateGroups", () => {
  test("refuses two groups under one name or flag", () => {
    const a = defineGroup(spec({ name: "a", aliases: ["shared"] }));
    const b = defineGroup(spec({ name: "b", aliases: ["shared"] }));
    expect(() => validateGroups([a, b])).toThrow(/groups a and b both answer to shared/);
    expect(() => validateGroups([a, defineGroup(spec({ name: "a" }))])).toThrow(/both answer to a/);
  });

  test("refuses one topic name declared twice, differently", () => {
    const other = defineGroup(spec({ name: "other", inputs: [on(topic("notes"), (n) => n)] }));
    expect(() => validateGroups([defineGroup(spec({})), other])).toThrow(/topic notes is declared twice, differently/);
  });

  test("refuses a declared topic named like a derived one", () => {
    const clash = defineGroup(spec({ name: "clash", inputs: [on(topic("notes-group-table"), (n) => n)] }));
    expect(() => validateGroups([defineGroup(spec({})), clash])).toThrow(/takes a name the runtime derives/);
  });

  test("Depositaja's own groups are valid", () => {
    expect(() => validateGroups(GROUPS)).not.toThrow();
  });
});

describe("what is derived from the list of groups", () => {
  test("topic specs: inputs (a group's own timer topic among them), emits, their dead letters, and a compacted changelog per group", () => {
    const specs = topicSpecs(GROUPS, 12);
    expect(specs.map((s) => s.name).sort()).toEqual(
      [
        "balance-table", "balance-timers", "balance-timers.dlq", "commands", "commands.dlq", "deposits", "deposits.dlq", "flagger-table", "flags", "flags.dlq",
        "ledger", "threshold-table", "transfers", "transfers.dlq", "user-wallets", "user-wallets.dlq", "users-table",
      ].sort(),
    );
    // Each name once, though `transfers` is both read and emitted by the balance group.
    expect(new Set(specs.map((s) => s.name)).size).toBe(specs.length);
    expect(specs.filter((s) => s.compacted).map((s) => s.name).sort()).toEqual(["balance-table", "flagger-table", "threshold-table", "users-table"]);
    expect(specs.every((s) => s.partitions === 12)).toBe(true);
  });

  test("processor flags: names and aliases, all groups when none is named", () => {
    expect(selectGroups(GROUPS, ["collector"])).toEqual([balance]);
    expect(selectGroups(GROUPS, ["detector", "flagger"])).toEqual([threshold, flagger]);
    expect(selectGroups(GROUPS, ["users", "wallet"])).toEqual([balance, users]);
    expect(selectGroups(GROUPS, [])).toEqual([...GROUPS]);
  });

  test("inspect knows every topic", () => {
    expect([...topicCatalog(GROUPS).keys()].sort()).toEqual(topicSpecs(GROUPS, 1).map((s) => s.name).sort());
  });
});

describe("an emit to a topic the group did not declare", () => {
  test("is a broken invariant: the processor stops", async () => {
    const rogue = defineGroup(spec({ name: "rogue", emits: [notes] }));
    const h = new Harness("shared", [rogue]);
    try {
      await h.init();
      await h.log.ensureTopics([{ name: "echoes", partitions: 3 }]);
      await h.log.produce([{ topic: notes.name, key: "w", value: notes.codec.encode({ id: "1", wallet: "w" }) }]);
      await expect(h.drain()).rejects.toBeInstanceOf(AssertionError);
    } finally {
      h.close();
    }
  });
});

test("the deposits topic keys a deposit by its wallet and identifies it by id and amount", () => {
  const d = { depositId: "d1", walletId: "w1", amountMinor: 5n, eventTimeMs: 0 };
  expect(deposits.key(d)).toBe("w1");
  expect(deposits.identity(d)).toEqual({ id: "d1", fingerprint: "amount_minor=5" });
  expect(deposits.codec.decode(deposits.codec.encode(d))).toEqual(d);
});

test("ids starting with reversal: are a reversal's only, on commands and on deposits", () => {
  const reserved = (decode: () => unknown) => {
    try {
      decode();
    } catch (error) {
      return (error as DecodeError).code;
    }
    return "decoded";
  };
  const common = { walletId: "w1", eventTimeMs: 0, description: "", reference: "" };
  expect(reserved(() => commands.codec.decode(commands.codec.encode({ ...common, operationId: "reversal:d1", kind: "withdrawal", amountMinor: 5n })))).toBe("operation_id_reserved");
  expect(reserved(() => deposits.codec.decode(deposits.codec.encode({ depositId: "reversal:d1", walletId: "w1", amountMinor: 5n, eventTimeMs: 0 })))).toBe("operation_id_reserved");
  expect(reserved(() => commands.codec.decode(commands.codec.encode({ ...common, operationId: "reversal:d1", kind: "reversal", reversalOf: "d1" })))).toBe("decoded");
  expect(reserved(() => commands.codec.decode(commands.codec.encode({ ...common, operationId: "reversal:d2", kind: "reversal", reversalOf: "d1" })))).toBe("reversal_id_must_be_derived");
});

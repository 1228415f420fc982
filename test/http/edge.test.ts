// Edge cases of the HTTP layer that need a log in a particular state: one that
// refuses writes, checked in process with app.request as Hono's own tests do.
import { describe, expect, spyOn, test } from "bun:test";
import { connect } from "node:net";
import { GROUPS } from "../../src/groups/index.js";
import { createApp, MAX_REQUEST_BODY_BYTES } from "../../src/http/app.js";
import { EmbeddedLog } from "../../src/log/embedded.js";
import { LogGuard } from "../../src/log/guard.js";
import { Emitter } from "../../src/runtime/emitter.js";
import { topicSpecs } from "../../src/runtime/group.js";
import { commands } from "../../src/topics/commands.js";
import { eventually } from "../support.js";

const noViews = { get: () => undefined, applied: () => undefined, entries: () => [], entryAt: () => undefined, status: () => ({ caughtUp: true, asOfMs: Date.now() }), waitFor: async () => true, start() {}, done: Promise.resolve(), async stop() {} };

function appOn(log: EmbeddedLog, depositAmountMaxMinor: bigint) {
  const guard = new LogGuard(log);
  return createApp({ commands: new Emitter(guard, commands), health: guard, balances: noViews, flags: noViews, depositAmountMaxMinor });
}

describe("when the log refuses a write", () => {
  test("POST /deposit answers 503 log_unavailable with the deposit id to retry with", async () => {
    // A real embedded log, closed: every produce fails as it would when the file or
    // the broker is gone.
    const log = new EmbeddedLog(":memory:", { pollMs: 10 });
    await log.ensureTopics(topicSpecs(GROUPS, 12));
    await log.close();
    const app = appOn(log, 10_000n);
    const res = await app.request("/deposit", { method: "POST", body: '{"wallet_id":"w","amount":"5"}' });
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("1");
    const body = (await res.json()) as { error: { code: string; message: string; deposit_id: string } };
    expect(body.error.code).toBe("log_unavailable");
    expect(body.error.deposit_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(body.error.message).toContain(body.error.deposit_id);

    const keyed = await app.request("/deposit", { method: "POST", headers: { "idempotency-key": "k-1" }, body: '{"wallet_id":"w","amount":"5"}' });
    expect(((await keyed.json()) as { error: { deposit_id: string } }).error.deposit_id).toBe("k-1");
  });
});

describe("money is judged by the digits sent", () => {
  const log = new EmbeddedLog(":memory:", { pollMs: 10 });
  const app = appOn(log, 100_000_000_000n);

  test.each([
    ['{"wallet_id":"w","amount":20.499999999999999}', 400, "amount_has_too_many_decimals"],
    ['{"wallet_id":"w","amount":0.30000000000000004}', 400, "amount_has_too_many_decimals"],
    ['{"wallet_id":"w","amount":-0}', 400, "amount_must_be_positive"],
    // Exponent forms are shifted digit by digit, never through a float.
    ['{"wallet_id":"w","amount":20499999999999999e-15}', 400, "amount_has_too_many_decimals"],
    ['{"wallet_id":"w","amount":2050000000000000001e-17}', 400, "amount_has_too_many_decimals"],
    ['{"wallet_id":"w","amount":1e-400}', 400, "amount_has_too_many_decimals"],
    ['{"wallet_id":"w","amount":1e309}', 400, "amount_exceeds_max"],
    ['{"wallet_id":"w","amount":-2e1}', 400, "amount_must_be_positive"],
    ['{"wallet_id":"w","amount":0e5}', 400, "amount_must_be_positive"],
  ])("%s -> %d %s", async (body, status, code) => {
    await log.ensureTopics(topicSpecs(GROUPS, 12));
    const res = await app.request("/deposit", { method: "POST", body });
    expect(res.status).toBe(status);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe(code);
  });

  test("an exponent is read as the number it is: 1e2 is 100", async () => {
    await log.ensureTopics(topicSpecs(GROUPS, 12));
    const res = await app.request("/deposit", { method: "POST", body: '{"wallet_id":"w","amount":1e2}' });
    expect(res.status).toBe(202);
    expect(await res.text()).toContain('"amount":100,');
  });

  test.each([
    ["2.05e1", "20.5"],
    ["205E-1", "20.5"],
    ["0.0001e4", "1"],
  ])("the exponent form %s is the exact amount %s", async (number, amount) => {
    await log.ensureTopics(topicSpecs(GROUPS, 12));
    const res = await app.request("/deposit", { method: "POST", body: `{"wallet_id":"w","amount":${number}}` });
    expect(res.status).toBe(202);
    expect(await res.text()).toContain(`"amount":${amount},`);
  });

  test("a body that is not UTF-8 is refused, not decoded to U+FFFD", async () => {
    const bytes = new Uint8Array([...new TextEncoder().encode('{"wallet_id":"'), 0xff, ...new TextEncoder().encode('","amount":"1"}')]);
    const res = await app.request("/deposit", { method: "POST", body: bytes });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("body_must_be_utf8");
  });
});

describe("overload is shed, not queued", () => {
  test("past WRITES_IN_FLIGHT_MAX a write answers 503 overloaded with Retry-After at once, and stores nothing", async () => {
    const log = new EmbeddedLog(":memory:", { pollMs: 10 });
    await log.ensureTopics(topicSpecs(GROUPS, 12));
    // The log holds every produce until released: the writes stay in flight.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const slow = { produce: async (records: Parameters<EmbeddedLog["produce"]>[0]) => held.then(() => log.produce(records)) };
    const guard = new LogGuard(log);
    const app = createApp({ commands: new Emitter(slow, commands), health: guard, balances: noViews, flags: noViews, depositAmountMaxMinor: 100_000n, writesInFlightMax: 2 });
    const post = (i: number) => app.request("/deposit", { method: "POST", headers: { "idempotency-key": `k-${i}` }, body: '{"wallet_id":"w","amount":"5"}' });

    const inFlight = [post(1), post(2)];
    const started = Date.now();
    const shed = await Promise.all([post(3), post(4), post(5)]);
    expect(Date.now() - started).toBeLessThan(1_000);
    for (const res of shed) {
      expect(res.status).toBe(503);
      expect(res.headers.get("retry-after")).toBe("1");
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("overloaded");
    }
    release();
    for (const res of await Promise.all(inFlight)) expect(res.status).toBe(202);
    // The shed ones were never stored; a write after the burst goes through.
    expect((await log.endOffsets(commands.name)).reduce((a, b) => a + b, 0)).toBe(2);
    expect((await post(6)).status).toBe(202);
    expect((await log.endOffsets(commands.name)).reduce((a, b) => a + b, 0)).toBe(3);
    await log.close();
  });
});

describe("an Idempotency-Key is UTF-8 text", () => {
  // Bun hands a header's bytes over one Latin-1 character each: "é" sent as UTF-8 (C3 A9)
  // arrives as "Ã©". These tests pass the header as Bun passes it.
  const asBunPassesIt = (text: string) => Buffer.from(text, "utf8").toString("latin1");
  const log = new EmbeddedLog(":memory:", { pollMs: 10 });
  const app = appOn(log, 100_000n);

  test.each(["é-1", "ключ-2", "😀-3", "plain-4"])("%s is the operation's id, and comes back as sent", async (key) => {
    await log.ensureTopics(topicSpecs(GROUPS, 12));
    const res = await app.request("/deposit", { method: "POST", headers: { "idempotency-key": asBunPassesIt(key) }, body: '{"wallet_id":"w","amount":"5"}' });
    expect(res.status).toBe(202);
    const body = (await res.json()) as { operation_id: string; deposit_id: string };
    expect(body.operation_id).toBe(key);
    expect(body.deposit_id).toBe(key);
  });

  test("bytes that are not UTF-8 are refused by name, and nothing is stored", async () => {
    await log.ensureTopics(topicSpecs(GROUPS, 12));
    const before = await log.endOffsets(commands.name);
    for (const bytes of [[0xe9], [0xff, 0xfe], [0xc3]]) {
      const res = await app.request("/deposit", { method: "POST", headers: { "idempotency-key": Buffer.from(bytes).toString("latin1") }, body: '{"wallet_id":"w","amount":"5"}' });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("idempotency_key_must_be_utf8");
    }
    expect(await log.endOffsets(commands.name)).toEqual(before);
  });

  test("a control character is still refused, once decoded (U+0085 is C2 85 in UTF-8)", async () => {
    await log.ensureTopics(topicSpecs(GROUPS, 12));
    const res = await app.request("/deposit", { method: "POST", headers: { "idempotency-key": asBunPassesIt("a\u0085b") }, body: '{"wallet_id":"w","amount":"5"}' });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("idempotency_key_has_control_characters");
  });
});

describe("a client that hangs up mid-body", () => {
  test("is noted as such, not as an unhandled error, and nothing is stored", async () => {
    const log = new EmbeddedLog(":memory:", { pollMs: 10 });
    await log.ensureTopics(topicSpecs(GROUPS, 12));
    const server = Bun.serve({ port: 0, fetch: appOn(log, 100_000n).fetch });
    const logged = spyOn(console, "log").mockImplementation(() => {});
    const errors = spyOn(console, "error").mockImplementation(() => {});
    try {
      // The note is made at most once a second, process-wide (with a count of those it
      // held back): let the second of an earlier file's note pass.
      await Bun.sleep(1_100);
      const socket = connect(server.port!, "127.0.0.1");
      await new Promise((resolve) => socket.once("connect", resolve));
      socket.write('POST /deposit HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"wallet_id":"w","amo');
      await Bun.sleep(100);
      socket.destroy();
      await eventually(() => expect(logged.mock.calls.flat().join("\n")).toContain("client closed the connection before its body arrived (POST /deposit"));
      expect(errors).not.toHaveBeenCalled();
      expect((await log.endOffsets(commands.name)).reduce((a, b) => a + b, 0)).toBe(0);
    } finally {
      logged.mockRestore();
      errors.mockRestore();
      server.stop(true);
      await log.close();
    }
  });
});

describe("refusals Bun makes below the app (README, Errors): pinned, so a Bun upgrade that changes them is noticed", () => {
  test.each([
    ["a body over maxRequestBodySize", `POST /deposit HTTP/1.1\r\nHost: x\r\nContent-Length: ${MAX_REQUEST_BODY_BYTES + 1}\r\n\r\n`, 413],
    ["headers over Bun's limit", `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(64_000)}\r\n\r\n`, 431],
    ["bad chunked framing", "POST /deposit HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nabc\r\n0\r\n\r\n", 400],
    ["a malformed request line", "G@T /health HTTP/1.1\r\nHost: x\r\n\r\n", 400],
    ["HTTP/2.0 in the request line", "GET /health HTTP/2.0\r\nHost: x\r\n\r\n", 505],
  ])("%s: %d with no body, and nothing stored", async (_name, request, status) => {
    const log = new EmbeddedLog(":memory:", { pollMs: 10 });
    await log.ensureTopics(topicSpecs(GROUPS, 12));
    const server = Bun.serve({ port: 0, fetch: appOn(log, 100_000n).fetch, maxRequestBodySize: MAX_REQUEST_BODY_BYTES });
    try {
      const socket = connect(server.port!, "127.0.0.1");
      let answer = "";
      socket.on("data", (chunk) => (answer += chunk));
      socket.on("error", () => {});
      await new Promise((resolve) => socket.once("connect", resolve));
      socket.write(request);
      await Promise.race([new Promise((resolve) => socket.once("close", resolve)), Bun.sleep(2_000)]);
      socket.destroy();
      const [head, body] = answer.split("\r\n\r\n");
      expect(head).toStartWith(`HTTP/1.1 ${status} `);
      expect(head!.toLowerCase()).toContain("connection: close");
      expect(body).toBe("");
      expect((await log.endOffsets(commands.name)).reduce((a, b) => a + b, 0)).toBe(0);
    } finally {
      server.stop(true);
      await log.close();
    }
  });
});

describe("waits for the view are bounded", () => {
  test("past VIEW_WAITS_MAX a ?after= read answers at once with what the view has", async () => {
    const log = new EmbeddedLog(":memory:", { pollMs: 10 });
    const waits: number[] = [];
    const slowView = { ...noViews, waitFor: (_: unknown, ms: number) => (waits.push(ms), ms === 0 ? Promise.resolve(false) : Bun.sleep(ms).then(() => false)) };
    const guard = new LogGuard(log);
    const app = createApp({ commands: new Emitter(guard, commands), health: guard, balances: slowView, flags: noViews, depositAmountMaxMinor: 100_000n, viewWaitsMax: 1, checkAfterWaitMs: 1_000 });
    const started = Date.now();
    const first = Promise.resolve(app.request("/check/w?after=0:0")).then((res) => ({ res, ms: Date.now() - started }));
    const second = await app.request("/check/w?after=0:0");
    const secondMs = Date.now() - started;
    expect(secondMs).toBeLessThan(500);
    expect(((await second.json()) as { after: { included: boolean } }).after.included).toBe(false);
    const { res, ms } = await first;
    expect(ms).toBeGreaterThanOrEqual(900);
    expect(((await res.json()) as { after: { included: boolean } }).after.included).toBe(false);
    expect(waits).toEqual([1_000, 0]);
    await log.close();
  });

  // A wait raced with the server's long-lived `closing` promise left a reaction on it per
  // request, each kept until shutdown (about 128 bytes: 12 MiB per 100,000 reads).
  test("a wait leaves nothing behind: 100,000 ?after= reads do not grow the heap, and the close still ends waits", async () => {
    const log = new EmbeddedLog(":memory:", { pollMs: 10 });
    const closing = Promise.withResolvers<void>();
    const view = { ...noViews, waitFor: (_: unknown, ms: number) => (ms === 0 ? Promise.resolve(false) : ms < 10_000 ? Promise.resolve(true) : new Promise<boolean>(() => {})) };
    const guard = new LogGuard(log);
    const app = createApp({ commands: new Emitter(guard, commands), health: guard, balances: view, flags: noViews, depositAmountMaxMinor: 100_000n, checkAfterWaitMs: 1_000, shutdown: { draining: false, closing: closing.promise } });
    const reads = async (n: number) => {
      for (let i = 0; i < n; i++) await (await app.request("/check/w?after=0:0")).arrayBuffer();
    };
    await reads(10_000);
    Bun.gc(true);
    const before = process.memoryUsage().heapUsed;
    await reads(100_000);
    Bun.gc(true);
    const grownMiB = (process.memoryUsage().heapUsed - before) / 1024 / 1024;
    expect(grownMiB).toBeLessThan(4);
    // A wait under way when the server closes answers at once, with what the view has.
    const slow = createApp({ commands: new Emitter(guard, commands), health: guard, balances: view, flags: noViews, depositAmountMaxMinor: 100_000n, checkAfterWaitMs: 60_000, shutdown: { draining: false, closing: closing.promise } });
    const started = Date.now();
    const waiting = slow.request("/check/w?after=0:0");
    await Bun.sleep(50);
    closing.resolve();
    const answer = (await (await waiting).json()) as { after: { included: boolean } };
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(answer.after.included).toBe(false);
    await log.close();
  }, 60_000);
});

// HTTP end to end on the embedded log: the real service (API, views and every
// processor group) started in this process with startDev().
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { connect } from "node:net";
import { partitionForKey } from "../../src/log/murmur2.js";
import { formatMinor } from "../../src/money.js";
import { decodeDeadLetter } from "../../src/runtime/dead-letter.js";
import { commands } from "../../src/topics/commands.js";
import { deposits } from "../../src/topics/deposits.js";
import { backends, eventually, readTopic, startDev } from "../support.js";

// Generous limits: other work may share the machine. A passing run takes about 2 s.
const CONVERGE_MS = 20_000;
setDefaultTimeout(30_000);

type Dev = Awaited<ReturnType<typeof startDev>>;

interface CheckBody {
  wallet_id: string;
  balance: number;
  above_threshold: boolean;
  deposit_count: number;
  rejected_deposit_count: number;
  flag: { reason: string; flagged_at: string | null } | null;
  as_of: string;
  stale: boolean;
}

interface Reply {
  status: number;
  contentType: string;
  text: string;
  // biome-ignore lint: response bodies are inspected field by field.
  json: any;
}

const SEED_WALLET = "0x1a3565a67721b6ab46fB11d5CF33A72D871aEbA3";

async function request(base: string, path: string, init: RequestInit = {}): Promise<Reply> {
  const res = await fetch(`${base}${path}`, init);
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, contentType: res.headers.get("content-type") ?? "", text, json };
}

/** POST /deposit; a string body is sent as is, anything else as JSON. */
function deposit(base: string, body: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  return request(base, "/deposit", {
    method: "POST",
    body: typeof body === "string" ? body : JSON.stringify(body),
    headers,
  });
}

async function accepted(base: string, body: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  const reply = await deposit(base, body, headers);
  expect(reply.status).toBe(202);
  return reply;
}

async function check(base: string, walletId: string): Promise<{ text: string; body: CheckBody }> {
  const reply = await request(base, `/check/${encodeURIComponent(walletId)}`);
  expect(reply.status).toBe(200);
  return { text: reply.text, body: reply.json as CheckBody };
}

/** Waits until the wallet's deposit_count reaches `count`, and returns its state then. */
function untilCount(base: string, walletId: string, count: number): Promise<{ text: string; body: CheckBody }> {
  return eventually(async () => {
    const state = await check(base, walletId);
    expect(state.body.deposit_count).toBe(count);
    return state;
  }, CONVERGE_MS);
}

async function depositEndOffsets(dev: Dev): Promise<number[]> {
  return dev.log.endOffsets(commands.name);
}

let barrierCount = 0;

/**
 * A barrier for the threshold path. It deposits more than the threshold into a fresh
 * wallet that lands in the same partition as `walletId`, and waits until that wallet
 * is flagged. Deposits, flags and the flagger's changelog are all keyed by wallet and
 * co-partitioned, and every stage processes a partition in order, so once the barrier
 * wallet shows as flagged, any flag caused by `walletId`'s earlier deposits is visible.
 */
async function thresholdBarrier(dev: Dev, walletId: string): Promise<void> {
  const partitions = await dev.log.partitionCount(deposits.name);
  const target = partitionForKey(walletId, partitions);
  let barrier: string;
  do barrier = `barrier-${++barrierCount}`;
  while (partitionForKey(barrier, partitions) !== target);
  const reply = await accepted(dev.base, { wallet_id: barrier, amount: "10000.01" });
  expect(Number(reply.json.position.split(":")[0])).toBe(target);
  await eventually(async () => expect((await check(dev.base, barrier)).body.above_threshold).toBe(true), CONVERGE_MS);
}

/** A POST written byte by byte on a socket, so that no Content-Type header is sent. */
function rawPost(base: string, path: string, body: string): Promise<{ status: number; text: string }> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname);
    let data = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => (data += chunk));
    socket.on("error", reject);
    socket.on("end", () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1]);
      resolve({ status, text: data.slice(data.indexOf("\r\n\r\n") + 4) });
    });
    socket.write(
      `POST ${path} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  });
}

for (const backend of await backends("HTTP API")) {
  describe(`HTTP API on the ${backend.name} log`, () => {
    let dev: Dev;
    beforeAll(async () => {
      dev = await startDev(backend.env());
    });
    afterAll(async () => {
      await dev.stop();
    });

    test("GET /health answers 200 and GET /ready becomes 200 ready", async () => {
      const health = await request(dev.base, "/health");
      expect(health.status).toBe(200);
      expect(health.json).toEqual({ status: "ok" });
      await eventually(async () => {
        const ready = await request(dev.base, "/ready");
        expect(ready.status).toBe(200);
        expect(ready.json.status).toBe("ready");
        expect(ready.json.views_caught_up).toEqual({ balances: true, flags: true, users: true });
      }, CONVERGE_MS);
    });

    test("the seed's curl session: a JSON body labelled form-urlencoded is accepted and counted", async () => {
      const reply = await deposit(dev.base, `{"wallet_id": "${SEED_WALLET}", "amount": "2000"}`, {
        "content-type": "application/x-www-form-urlencoded",
      });
      expect(reply.status).toBe(202);
      expect(reply.contentType).toStartWith("application/json");
      expect(reply.text).toContain('"amount":2000');
      expect(reply.text).not.toContain('"amount":"2000"');
      expect(typeof reply.json.deposit_id).toBe("string");
      expect(reply.json.deposit_id.length).toBeGreaterThan(0);
      expect(reply.json.wallet_id).toBe(SEED_WALLET);
      expect(reply.json.amount).toBe(2000);
      expect(Number(reply.json.position.split(":")[0])).toBe(partitionForKey(SEED_WALLET, await dev.log.partitionCount(deposits.name)));

      const state = await untilCount(dev.base, SEED_WALLET, 1);
      expect(state.text).toContain('"balance":2000,');
      expect(state.body).toMatchObject({ wallet_id: SEED_WALLET, balance: 2000, above_threshold: false, rejected_deposit_count: 0, flag: null });
    });

    test("no Content-Type header at all is fine", async () => {
      const wallet = "no-content-type";
      const reply = await rawPost(dev.base, "/deposit", JSON.stringify({ wallet_id: wallet, amount: "5" }));
      expect(reply.status).toBe(202);
      expect(reply.text).toContain('"amount":5');
      const state = await untilCount(dev.base, wallet, 1);
      expect(state.body.balance).toBe(5);
    });

    test("6,000 then 5,000 in quick succession flags the wallet (reason threshold)", async () => {
      const wallet = "threshold-breach";
      await accepted(dev.base, { wallet_id: wallet, amount: "6000" });
      await accepted(dev.base, { wallet_id: wallet, amount: 5000 });
      // The flag and the balance come from different groups and views: wait for both.
      const state = await eventually(async () => {
        const s = await check(dev.base, wallet);
        expect(s.body.above_threshold).toBe(true);
        expect(s.body.deposit_count).toBe(2);
        return s;
      }, CONVERGE_MS);
      expect(state.body.flag?.reason).toBe("threshold");
      expect(Number.isNaN(Date.parse(state.body.flag?.flagged_at ?? ""))).toBe(false);
      expect(state.text).toContain('"balance":11000,');
    });

    test("exactly 4,000 + 6,000.00 = 10,000.00 is not above the threshold", async () => {
      const wallet = "threshold-exact";
      await accepted(dev.base, { wallet_id: wallet, amount: "4000" });
      await accepted(dev.base, { wallet_id: wallet, amount: "6000.00" });
      await untilCount(dev.base, wallet, 2);
      await thresholdBarrier(dev, wallet);
      const state = await check(dev.base, wallet);
      expect(state.body).toMatchObject({ balance: 10000, deposit_count: 2, above_threshold: false, flag: null });
    });

    test("0.1 + 0.2 is exactly 0.3 in the JSON text", async () => {
      const wallet = "exact-tenths";
      await accepted(dev.base, { wallet_id: wallet, amount: "0.1" });
      await accepted(dev.base, { wallet_id: wallet, amount: 0.2 });
      const state = await untilCount(dev.base, wallet, 2);
      expect(state.text).toContain('"balance":0.3,');
      expect(state.text).not.toContain("0.30000000000000004");
    });

    test('"20.5" as a string and 20.5 as a number are both accepted', async () => {
      const wallet = "twenty-and-a-half";
      const asString = await accepted(dev.base, { wallet_id: wallet, amount: "20.5" });
      const asNumber = await accepted(dev.base, `{"wallet_id":"${wallet}","amount":20.5}`);
      expect(asString.text).toContain('"amount":20.5,');
      expect(asNumber.text).toContain('"amount":20.5,');
      const state = await untilCount(dev.base, wallet, 2);
      expect(state.text).toContain('"balance":41,');
    });

    test("an unknown wallet has balance 0 and is not flagged", async () => {
      const state = await check(dev.base, "never-deposited");
      expect(state.text).toContain('"balance":0,');
      expect(state.body).toEqual({
        wallet_id: "never-deposited",
        balance: 0,
        above_threshold: false,
        deposit_count: 0,
        rejected_deposit_count: 0,
        flag: null,
        as_of: expect.any(String),
        stale: false,
      });
      // The views say how fresh they are: complete as of a moment ago.
      expect(Date.now() - Date.parse(state.body.as_of)).toBeLessThan(CONVERGE_MS);
    });

    test("a wallet id of 128 characters is accepted and can be checked", async () => {
      const wallet = "w".repeat(128);
      const reply = await accepted(dev.base, { wallet_id: wallet, amount: "1" });
      expect(reply.json.wallet_id).toBe(wallet);
      expect((await untilCount(dev.base, wallet, 1)).body.balance).toBe(1);
    });

    test("an amount of exactly DEPOSIT_AMOUNT_MAX (1000000000) is accepted", async () => {
      const wallet = "max-deposit";
      const reply = await accepted(dev.base, { wallet_id: wallet, amount: "1000000000" });
      expect(reply.text).toContain('"amount":1000000000,');
      expect((await untilCount(dev.base, wallet, 1)).text).toContain('"balance":1000000000,');
    });

    // KNOWN BUG, expected to fail: JSON may carry a lone UTF-16 surrogate ("\ud800"). The
    // API accepts such a wallet id and echoes it, but the protobuf encoding (and the log's
    // key) replace it with U+FFFD, so the deposit is credited to another wallet.
    test("a wallet id with a lone surrogate is refused, never credited to another wallet", async () => {
      const real = "\ufffd-alias";
      await accepted(dev.base, { wallet_id: real, amount: "1" });
      await untilCount(dev.base, real, 1);
      const alias = await deposit(dev.base, '{"wallet_id":"\\ud800-alias","amount":"2"}');
      expect(alias.status).toBe(400);
      expect(alias.json.error.code).toBe("wallet_id_must_be_valid_unicode");
      // A barrier on the real wallet: once it is applied, anything before it on the
      // same partition has been applied too.
      await accepted(dev.base, { wallet_id: real, amount: "4" }, { "idempotency-key": "alias-barrier" });
      await eventually(() => expect(dev.service.views?.balances.get(real)?.lastDepositId).toBe("alias-barrier"), CONVERGE_MS);
      const state = await check(dev.base, real);
      expect(state.body).toMatchObject({ balance: 5, deposit_count: 2 });
    });

    describe("Idempotency-Key", () => {
      test("the same key three times is one deposit: a repeat answers as that operation, decided or not", async () => {
        const wallet = "idem-repeat";
        const replies = [];
        for (let i = 0; i < 3; i++) {
          const reply = await request(dev.base, "/deposit", { method: "POST", body: JSON.stringify({ wallet_id: wallet, amount: "5" }), headers: { "idempotency-key": "idem-key-1" } });
          // 202 while pending; 200 with its decision once the actor has decided it.
          expect([200, 202]).toContain(reply.status);
          replies.push(reply);
        }
        for (const reply of replies) {
          expect(reply.json.deposit_id).toBe("idem-key-1");
          expect(reply.json.operation_id).toBe("idem-key-1");
          expect(reply.json.wallet_id).toBe(wallet);
          expect(reply.json.position).toBe(replies[0]!.json.position);
        }
        // A distinct deposit after them: the wallet's partition is applied in order, so a
        // count of 2 means the three keyed requests have all been processed.
        await accepted(dev.base, { wallet_id: wallet, amount: "1" });
        const state = await untilCount(dev.base, wallet, 2);
        expect(state.body.balance).toBe(6);
        expect(state.body.rejected_deposit_count).toBe(0);
        const again = await request(dev.base, "/deposit", { method: "POST", body: JSON.stringify({ wallet_id: wallet, amount: "5" }), headers: { "idempotency-key": "idem-key-1" } });
        expect(again.status).toBe(200);
        expect(again.json).toMatchObject({ deposit_id: "idem-key-1", status: "settled", amount: 5, entry_id: 1, balance_after: 5 });
      });

      test("the same key with a different amount is 409 idempotency_key_reused, and changes nothing", async () => {
        const wallet = "idem-conflict";
        const first = await accepted(dev.base, { wallet_id: wallet, amount: "5" }, { "idempotency-key": "idem-key-2" });
        expect(first.json.deposit_id).toBe("idem-key-2");
        const second = await request(dev.base, "/deposit", { method: "POST", body: JSON.stringify({ wallet_id: wallet, amount: "7" }), headers: { "idempotency-key": "idem-key-2" } });
        expect(second.status).toBe(409);
        expect(second.json.error.code).toBe("idempotency_key_reused");
        await accepted(dev.base, { wallet_id: wallet, amount: "1" });
        const state = await untilCount(dev.base, wallet, 2);
        expect(state.body.balance).toBe(6);
        expect(state.body.rejected_deposit_count).toBe(0);
        // Once decided, the view knows it too: still 409, and as a withdrawal too.
        const third = await request(dev.base, "/withdraw", { method: "POST", body: JSON.stringify({ wallet_id: wallet, amount: "5" }), headers: { "idempotency-key": "idem-key-2" } });
        expect(third.status).toBe(409);
        expect(third.json.error.code).toBe("idempotency_key_reused");
      });

      test("the same key on another wallet is another deposit", async () => {
        const walletA = "idem-shared-a";
        const walletB = "idem-shared-b";
        await accepted(dev.base, { wallet_id: walletA, amount: "3" }, { "idempotency-key": "idem-key-3" });
        await accepted(dev.base, { wallet_id: walletB, amount: "4" }, { "idempotency-key": "idem-key-3" });
        expect((await untilCount(dev.base, walletA, 1)).body.balance).toBe(3);
        expect((await untilCount(dev.base, walletB, 1)).body.balance).toBe(4);
      });
    });

    describe("bad input: a 4xx JSON error with a specific code, and nothing stored", () => {
      const W = "bad-input-wallet";
      const json = (body: unknown) => JSON.stringify(body);
      const form = () => {
        const f = new FormData();
        f.set("wallet_id", W);
        f.set("amount", "5");
        return f;
      };
      const post = (body: NonNullable<RequestInit["body"]>, headers: Record<string, string> = {}): RequestInit => ({ method: "POST", body, headers });

      // [name, path, request, status, code]
      const cases: [string, string, () => RequestInit, number, string][] = [
        ["malformed JSON", "/deposit", () => post(`{"wallet_id":"${W}","amount":`), 400, "body_must_be_json"],
        ["plain text", "/deposit", () => post(`wallet_id=${W}&amount=5`, { "content-type": "text/plain" }), 400, "body_must_be_json"],
        ["a form-encoded body", "/deposit", () => post(`wallet_id=${W}&amount=5`, { "content-type": "application/x-www-form-urlencoded" }), 400, "body_must_be_json"],
        ["an empty body", "/deposit", () => post(""), 400, "body_must_be_json"],
        ["no body", "/deposit", () => ({ method: "POST" }), 400, "body_must_be_json"],
        ["multipart/form-data", "/deposit", () => post(form()), 415, "body_must_be_json"],
        ["a JSON array", "/deposit", () => post(json([{ wallet_id: W, amount: "5" }])), 400, "body_must_be_object"],
        ["a JSON string", "/deposit", () => post(json(W)), 400, "body_must_be_object"],
        ["a JSON number", "/deposit", () => post("5"), 400, "body_must_be_object"],
        ["JSON null", "/deposit", () => post("null"), 400, "body_must_be_object"],
        ["JSON true", "/deposit", () => post("true"), 400, "body_must_be_object"],
        ["missing wallet_id", "/deposit", () => post(json({ amount: "5" })), 400, "wallet_id_is_required"],
        ["null wallet_id", "/deposit", () => post(json({ wallet_id: null, amount: "5" })), 400, "wallet_id_is_required"],
        ["empty wallet_id", "/deposit", () => post(json({ wallet_id: "", amount: "5" })), 400, "wallet_id_is_required"],
        ["wallet_id of 129 characters", "/deposit", () => post(json({ wallet_id: "w".repeat(129), amount: "5" })), 400, "wallet_id_too_long"],
        ["wallet_id a number", "/deposit", () => post(json({ wallet_id: 42, amount: "5" })), 400, "wallet_id_must_be_string"],
        ["wallet_id an array", "/deposit", () => post(json({ wallet_id: [W], amount: "5" })), 400, "wallet_id_must_be_string"],
        ["wallet_id with U+0001", "/deposit", () => post(json({ wallet_id: `${W}\u0001`, amount: "5" })), 400, "wallet_id_has_control_characters"],
        ["wallet_id with a newline", "/deposit", () => post(json({ wallet_id: `${W}\n`, amount: "5" })), 400, "wallet_id_has_control_characters"],
        ["wallet_id with DEL", "/deposit", () => post(json({ wallet_id: `${W}\u007f`, amount: "5" })), 400, "wallet_id_has_control_characters"],
        ['amount "0"', "/deposit", () => post(json({ wallet_id: W, amount: "0" })), 400, "amount_must_be_positive"],
        ["amount 0", "/deposit", () => post(json({ wallet_id: W, amount: 0 })), 400, "amount_must_be_positive"],
        ['amount "0.00"', "/deposit", () => post(json({ wallet_id: W, amount: "0.00" })), 400, "amount_must_be_positive"],
        ["amount -5", "/deposit", () => post(json({ wallet_id: W, amount: -5 })), 400, "amount_must_be_positive"],
        ['amount "-5"', "/deposit", () => post(json({ wallet_id: W, amount: "-5" })), 400, "amount_must_be_positive"],
        ['amount "1.001"', "/deposit", () => post(json({ wallet_id: W, amount: "1.001" })), 400, "amount_has_too_many_decimals"],
        ["amount 1.001", "/deposit", () => post(`{"wallet_id":"${W}","amount":1.001}`), 400, "amount_has_too_many_decimals"],
        ['amount "NaN"', "/deposit", () => post(json({ wallet_id: W, amount: "NaN" })), 400, "amount_must_be_decimal"],
        ['amount "Infinity"', "/deposit", () => post(json({ wallet_id: W, amount: "Infinity" })), 400, "amount_must_be_decimal"],
        ["amount 1e309 (JSON text)", "/deposit", () => post(`{"wallet_id":"${W}","amount":1e309}`), 400, "amount_exceeds_max"],
        ['amount "abc"', "/deposit", () => post(json({ wallet_id: W, amount: "abc" })), 400, "amount_must_be_decimal"],
        ['amount ""', "/deposit", () => post(json({ wallet_id: W, amount: "" })), 400, "amount_must_be_decimal"],
        ['amount " 5"', "/deposit", () => post(json({ wallet_id: W, amount: " 5" })), 400, "amount_must_be_decimal"],
        ['amount "5e3"', "/deposit", () => post(json({ wallet_id: W, amount: "5e3" })), 400, "amount_must_be_decimal"],
        ["amount [5]", "/deposit", () => post(json({ wallet_id: W, amount: [5] })), 400, "amount_must_be_number_or_string"],
        ['amount {"v":5}', "/deposit", () => post(json({ wallet_id: W, amount: { v: 5 } })), 400, "amount_must_be_number_or_string"],
        ["amount true", "/deposit", () => post(json({ wallet_id: W, amount: true })), 400, "amount_must_be_number_or_string"],
        ["amount null", "/deposit", () => post(json({ wallet_id: W, amount: null })), 400, "amount_is_required"],
        ["amount missing", "/deposit", () => post(json({ wallet_id: W })), 400, "amount_is_required"],
        ['amount "1000000000.01" (over DEPOSIT_AMOUNT_MAX)', "/deposit", () => post(json({ wallet_id: W, amount: "1000000000.01" })), 400, "amount_exceeds_max"],
        ["a body over 16 KiB", "/deposit", () => post(json({ wallet_id: W, amount: "5", padding: "x".repeat(16 * 1024) })), 413, "body_too_large"],
        [
          "a body over 16 KiB, streamed without Content-Length",
          "/deposit",
          () => post(new Blob([json({ wallet_id: W, amount: "5", padding: "x".repeat(16 * 1024) })]).stream()),
          413,
          "body_too_large",
        ],
        ["an Idempotency-Key of 129 characters", "/deposit", () => post(json({ wallet_id: W, amount: "5" }), { "idempotency-key": "k".repeat(129) }), 400, "idempotency_key_too_long"],
        ["an empty Idempotency-Key", "/deposit", () => post(json({ wallet_id: W, amount: "5" }), { "idempotency-key": "" }), 400, "idempotency_key_is_required"],
        ["an Idempotency-Key with a tab", "/deposit", () => post(json({ wallet_id: W, amount: "5" }), { "idempotency-key": "a\tb" }), 400, "idempotency_key_has_control_characters"],
        ["an unknown route", "/nope", () => ({ method: "GET" }), 404, "route_not_found"],
        ["POST to /deposits", "/deposits", () => post(json({ wallet_id: W, amount: "5" })), 404, "route_not_found"],
        ["GET /deposit", "/deposit", () => ({ method: "GET" }), 405, "method_not_allowed"],
        ["PUT /deposit", "/deposit", () => ({ ...post(json({ wallet_id: W, amount: "5" })), method: "PUT" }), 405, "method_not_allowed"],
        ["DELETE /deposit", "/deposit", () => ({ method: "DELETE" }), 405, "method_not_allowed"],
        ["POST /check", `/check/${W}`, () => post(json({ wallet_id: W, amount: "5" })), 405, "method_not_allowed"],
        ["GET /check with a 129-character wallet id", `/check/${"w".repeat(129)}`, () => ({ method: "GET" }), 400, "wallet_id_too_long"],
        ["GET /check with a control character", `/check/${W}%01`, () => ({ method: "GET" }), 400, "wallet_id_has_control_characters"],
      ];

      test("a first deposit, for a known starting state", async () => {
        await accepted(dev.base, { wallet_id: W, amount: "1" });
        const state = await untilCount(dev.base, W, 1);
        expect(state.body.balance).toBe(1);
      });

      test.each(cases)("%s", async (_name, path, init, status, code) => {
        const before = await depositEndOffsets(dev);
        const reply = await request(dev.base, path, init());
        expect(reply.status).toBe(status);
        expect(reply.contentType).toStartWith("application/json");
        expect(Object.keys(reply.json)).toEqual(["error"]);
        expect(Object.keys(reply.json.error).sort()).toEqual(["code", "message"]);
        expect(reply.json.error.code).toBe(code);
        expect(typeof reply.json.error.message).toBe("string");
        expect(reply.json.error.message.length).toBeGreaterThan(0);
        // Nothing reached the log.
        expect(await depositEndOffsets(dev)).toEqual(before);
      });

      test("afterwards the wallet holds only its good deposits", async () => {
        await accepted(dev.base, { wallet_id: W, amount: "2" });
        const state = await untilCount(dev.base, W, 2);
        expect(state.body).toMatchObject({ balance: 3, deposit_count: 2, rejected_deposit_count: 0, above_threshold: false });
      });
    });
  });

  describe(`${backend.name}: a deposit that would overflow the balance`, () => {
    let dev: Dev;
    beforeAll(async () => {
      dev = await startDev({ ...backend.env(), BALANCE_MAX: "100", DEPOSIT_AMOUNT_MAX: "100" });
    });
    afterAll(async () => {
      await dev.stop();
    });

    test("is refused by the collector: the balance stays, the refusal is counted", async () => {
      const wallet = "overflow";
      await accepted(dev.base, { wallet_id: wallet, amount: "60" });
      await accepted(dev.base, { wallet_id: wallet, amount: "60" });
      const state = await eventually(async () => {
        const s = await check(dev.base, wallet);
        expect(s.body.rejected_deposit_count).toBe(1);
        return s;
      }, CONVERGE_MS);
      expect(state.body).toMatchObject({ balance: 60, deposit_count: 1, rejected_deposit_count: 1 });
      expect(dev.service.views?.balances.get(wallet)?.lastRejectionCode).toBe("balance_would_exceed_max");

      // Up to the maximum, inclusive, is still fine.
      await accepted(dev.base, { wallet_id: wallet, amount: "40" });
      const full = await untilCount(dev.base, wallet, 2);
      expect(full.body).toMatchObject({ balance: 100, rejected_deposit_count: 1 });
    });

    test("the configured DEPOSIT_AMOUNT_MAX is enforced at the edge", async () => {
      const reply = await deposit(dev.base, { wallet_id: "overflow-edge", amount: "100.01" });
      expect(reply.status).toBe(400);
      expect(reply.json.error.code).toBe("amount_exceeds_max");
    });
  });

  describe(`${backend.name}: read your writes with GET /check?after=<position>`, () => {
    let dev: Dev;
    beforeAll(async () => {
      dev = await startDev({ ...backend.env(), CHECK_AFTER_WAIT_MS: "500" });
    });
    afterAll(async () => {
      await dev.stop();
    });

    test("a check after the deposit's position sees it at once, every time", async () => {
      for (let i = 1; i <= 20; i++) {
        const reply = await accepted(dev.base, { wallet_id: "ryw", amount: "1.01" });
        const res = await request(dev.base, `/check/ryw?after=${reply.json.position}`);
        expect(res.status).toBe(200);
        expect(res.json.after).toEqual({ position: reply.json.position, included: true });
        expect(res.json.deposit_count).toBe(i);
        expect(res.text).toContain(`"balance":${formatMinor(101n * BigInt(i))},`);
      }
    });

    test("a retried Idempotency-Key answers the first write's position, and changes nothing", async () => {
      const first = await accepted(dev.base, { wallet_id: "ryw-retry", amount: "7" }, { "idempotency-key": "ryw-k" });
      const again = await request(dev.base, "/deposit", { method: "POST", body: JSON.stringify({ wallet_id: "ryw-retry", amount: "7" }), headers: { "idempotency-key": "ryw-k" } });
      expect(again.json.position).toBe(first.json.position);
      const res = await request(dev.base, `/check/ryw-retry?after=${again.json.position}`);
      expect(res.json.after.included).toBe(true);
      expect(res.json).toMatchObject({ balance: 7, deposit_count: 1 });
    });

    test("a position not reached within the wait is answered with included: false", async () => {
      const started = Date.now();
      const res = await request(dev.base, "/check/ryw?after=0:999999999");
      expect(res.status).toBe(200);
      expect(res.json.after).toEqual({ position: "0:999999999", included: false });
      expect(Date.now() - started).toBeGreaterThanOrEqual(450);
    });

    test.each(["", "9", "a:1", "1:-1", "1:2:3", "99999:1"])("after=%p is refused with after_must_be_position", async (after) => {
      const res = await request(dev.base, `/check/ryw?after=${encodeURIComponent(after)}`);
      expect(res.status).toBe(400);
      expect(res.json.error.code).toBe("after_must_be_position");
    });
  });

  describe(`${backend.name}: a deposit refused for overflowing the balance`, () => {
    let dev: Dev;
    beforeAll(async () => {
      dev = await startDev({ ...backend.env(), BALANCE_MAX: "15000", DEPOSIT_AMOUNT_MAX: "15000" });
    });
    afterAll(async () => {
      await dev.stop();
    });

    // Documented in actors/threshold.ts and the README: the detector cannot see balances,
    // so an attempt refused for overflow still counts as money moved in the window.
    test("still counts towards the threshold, as an attempt", async () => {
      const wallet = "overflow-threshold";
      await accepted(dev.base, { wallet_id: wallet, amount: "9000" });
      await accepted(dev.base, { wallet_id: wallet, amount: "9000" });
      await eventually(async () => expect((await check(dev.base, wallet)).body.rejected_deposit_count).toBe(1), CONVERGE_MS);
      await eventually(async () => expect((await check(dev.base, wallet)).body.above_threshold).toBe(true), CONVERGE_MS);
      const state = await check(dev.base, wallet);
      expect(state.body).toMatchObject({ balance: 9000, deposit_count: 1, rejected_deposit_count: 1 });
    });
  });
}

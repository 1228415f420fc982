// The wallet ledger over HTTP, end to end on both logs: the real service (API, views
// and every processor group) with startDev(), on the embedded log and on Kafka.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { commands } from "../../src/topics/commands.js";
import { backends, eventually, startDev } from "../support.js";
import { fresh, request, type Reply } from "./client.js";

setDefaultTimeout(60_000);
const CONVERGE_MS = 20_000;

type Dev = Awaited<ReturnType<typeof startDev>>;

const call = (dev: Dev, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => request(dev.base, method, path, body, headers);

const WAIT = { prefer: "wait=5" };
const deposit = (dev: Dev, wallet: string, amount: string, headers: Record<string, string> = WAIT) => call(dev, "POST", "/deposit", { wallet_id: wallet, amount }, headers);
const withdraw = (dev: Dev, wallet: string, amount: string, headers: Record<string, string> = WAIT) => call(dev, "POST", "/withdraw", { wallet_id: wallet, amount }, headers);
const setLimit = (dev: Dev, wallet: string, limit: string) => call(dev, "PUT", `/wallets/${wallet}/credit-limit`, { credit_limit: limit }, WAIT);
const reverse = (dev: Dev, wallet: string, id: string) => call(dev, "POST", `/wallets/${wallet}/operations/${encodeURIComponent(id)}/reverse`, undefined, WAIT);

function expectDecided(reply: Reply, status: "settled" | "rejected", reason?: string): void {
  expect({ http: reply.status, status: reply.json.status, reason: reply.json.reason }).toEqual({ http: 200, status, reason });
  expect(reply.headers.get("preference-applied")).toBe("wait=5");
}

for (const backend of await backends("wallet ledger over HTTP")) {
  describe(`the wallet ledger on the ${backend.name} log`, () => {
    let dev: Dev;
    beforeAll(async () => {
      dev = await startDev(backend.env());
    });
    afterAll(async () => {
      await dev.stop();
    });

    test("the card-processor session: deposits, decided withdrawals, a credit limit, a reversal into debt, history and balance at a time", async () => {
      const w = fresh("session");
      const d = await deposit(dev, w, "100", { ...WAIT, "idempotency-key": "dep-100" });
      expectDecided(d, "settled");
      expect(d.json).toMatchObject({ deposit_id: "dep-100", operation_id: "dep-100", kind: "deposit", amount: 100, entry_id: 1, balance_after: 100 });

      const w30 = await withdraw(dev, w, "30");
      expectDecided(w30, "settled");
      expect(w30.json).toMatchObject({ kind: "withdrawal", amount: 30, balance_after: 70 });
      const afterFirstWithdrawal = w30.json.decided_at as string;

      expectDecided(await withdraw(dev, w, "100"), "rejected", "insufficient_funds");
      expectDecided(await setLimit(dev, w, "50"), "settled");
      const w100 = await withdraw(dev, w, "100");
      expectDecided(w100, "settled");
      expect(w100.json.balance_after).toBe(-30);

      const rev = await reverse(dev, w, "dep-100");
      expectDecided(rev, "settled");
      expect(rev.json).toMatchObject({ operation_id: "reversal:dep-100", kind: "reversal", amount: 100, balance_after: -130, reversal_of: "dep-100" });
      // In debt: every debit is refused, however small, until it is repaid.
      expectDecided(await withdraw(dev, w, "0.01"), "rejected", "insufficient_funds");
      // Reversing twice is the same operation.
      const again = await reverse(dev, w, "dep-100");
      expect(again.status).toBe(200);
      expect(again.json).toMatchObject({ operation_id: "reversal:dep-100", status: "settled", entry_id: rev.json.entry_id });

      const wallet = await call(dev, "GET", `/wallets/${w}`);
      expect(wallet.json).toMatchObject({
        wallet_id: w, balance: -130, available: -80, held: 0, credit_limit: 50, above_threshold: false, flag: null,
        deposit_count: 1, withdrawal_count: 2, reversal_count: 1, rejected_count: 2, entry_count: 4,
      });

      const history = await call(dev, "GET", `/wallets/${w}/history`);
      expect(history.status).toBe(200);
      expect(history.json.next_cursor).toBeNull();
      expect(history.json.entries.map((e: { entry_id: number; kind: string; amount: number; balance_after: number }) => [e.entry_id, e.kind, e.amount, e.balance_after])).toEqual([
        [4, "reversal", -100, -130],
        [3, "withdrawal", -100, -30],
        [2, "withdrawal", -30, 70],
        [1, "deposit", 100, 100],
      ]);

      const at = await call(dev, "GET", `/wallets/${w}/balance?at=${afterFirstWithdrawal}`);
      expect(at.json).toMatchObject({ wallet_id: w, balance: 70, entry_id: 2 });
      const before = await call(dev, "GET", `/wallets/${w}/balance?at=2000-01-01T00:00:00Z`);
      expect(before.json).toMatchObject({ balance: 0, entry_id: null });
      const now = await call(dev, "GET", `/wallets/${w}/balance?at=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`);
      expect(now.json).toMatchObject({ balance: -130, entry_id: 4 });

      const reused = await deposit(dev, w, "101", { "idempotency-key": "dep-100" });
      expect(reused.status).toBe(409);
      expect(reused.json.error.code).toBe("idempotency_key_reused");
      // GET /check is as it was: the balance, now net of withdrawals and reversals.
      const check = await call(dev, "GET", `/check/${w}`);
      expect(check.json).toMatchObject({ balance: -130, deposit_count: 1, rejected_deposit_count: 0, above_threshold: false });
    });

    test("Prefer: wait answers pending when the wait runs out; the operation then reads as decided", async () => {
      const w = fresh("pending");
      const reply = await deposit(dev, w, "5", { prefer: "wait=0" });
      expect(reply.status).toBe(202);
      expect(reply.json).toMatchObject({ status: "pending", kind: "deposit", amount: 5, wallet_id: w });
      expect(reply.headers.get("preference-applied")).toBe("wait=0");
      const plain = await deposit(dev, w, "1", {});
      expect(plain.status).toBe(202);
      expect(plain.headers.get("preference-applied")).toBeNull();
      const op = await call(dev, "GET", `/wallets/${w}/operations/${reply.json.operation_id}?after=${reply.json.position}`);
      expect(op.status).toBe(200);
      expect(op.json).toMatchObject({ operation_id: reply.json.operation_id, status: "settled", kind: "deposit", amount: 5, position: reply.json.position });
      expect(Date.parse(op.json.decided_at)).toBeGreaterThanOrEqual(Date.parse(op.json.created_at));
    });

    test("an operation: 404 when unknown, its reason when rejected, the id chosen from key, then reference", async () => {
      const w = fresh("ops");
      const missing = await call(dev, "GET", `/wallets/${w}/operations/nope`);
      expect(missing.status).toBe(404);
      expect(missing.json.error.code).toBe("operation_not_found");

      const byReference = await call(dev, "POST", "/withdraw", { wallet_id: w, amount: "1", reference: "payout-1", description: "first payout" }, WAIT);
      expectDecided(byReference, "rejected", "insufficient_funds");
      expect(byReference.json).toMatchObject({ operation_id: "payout-1", reference: "payout-1", description: "first payout" });
      const read = await call(dev, "GET", `/wallets/${w}/operations/payout-1`);
      expect(read.json).toMatchObject({ operation_id: "payout-1", status: "rejected", reason: "insufficient_funds", kind: "withdrawal", amount: 1 });

      const keyWins = await call(dev, "POST", "/deposit", { wallet_id: w, amount: "2", reference: "ref-2" }, { ...WAIT, "idempotency-key": "key-2" });
      expect(keyWins.json).toMatchObject({ operation_id: "key-2", reference: "ref-2", status: "settled" });
      // The same reference again with the same content is the same operation; as another kind, 409.
      expect((await call(dev, "POST", "/withdraw", { wallet_id: w, amount: "1", reference: "payout-1" })).json).toMatchObject({ operation_id: "payout-1", status: "rejected" });
      const otherKind = await call(dev, "POST", "/deposit", { wallet_id: w, amount: "1", reference: "payout-1" });
      expect(otherKind.status).toBe(409);
      expect(otherKind.json.error.code).toBe("idempotency_key_reused");
    });

    test("a write racing another producer's command under the same id is 409 under Prefer: wait; the first keeps its status", async () => {
      const w = fresh("race");
      // Another producer (another API instance, a trusted service) wrote id "race-1" first.
      const first = { kind: "deposit" as const, operationId: "race-1", walletId: w, amountMinor: 700n, eventTimeMs: Date.now(), description: "", reference: "" };
      await dev.log.produce([{ topic: commands.name, key: w, value: commands.codec.encode(first) }]);
      const second = await deposit(dev, w, "8", { ...WAIT, "idempotency-key": "race-1" });
      expect(second.status).toBe(409);
      expect(second.json.error.code).toBe("idempotency_key_reused");
      const op = await call(dev, "GET", `/wallets/${w}/operations/race-1`);
      expect(op.json).toMatchObject({ status: "settled", amount: 7, kind: "deposit" });
      expect((await call(dev, "GET", `/wallets/${w}`)).json).toMatchObject({ balance: 7, deposit_count: 1 });
    });

    test("a write that lost to another producer's command learns it: 409 at once, or from GET of its operation", async () => {
      const w = fresh("lost");
      const first = { kind: "withdrawal" as const, operationId: "lost-1", walletId: w, amountMinor: 1n, eventTimeMs: Date.now(), description: "", reference: "" };
      await dev.log.produce([{ topic: commands.name, key: w, value: commands.codec.encode(first) }]);
      const mine = await deposit(dev, w, "9", { "idempotency-key": "lost-1" });
      if (mine.status === 202) {
        // The view did not know the other write yet: this one went to the log, and lost.
        const op = await call(dev, "GET", `/wallets/${w}/operations/lost-1?after=${mine.json.position}`);
        expect(op.status).toBe(409);
        expect(op.json.error.code).toBe("idempotency_key_reused");
      } else {
        expect(mine.status).toBe(409);
      }
      expect((await call(dev, "GET", `/wallets/${w}`)).json).toMatchObject({ balance: 0, deposit_count: 0, rejected_count: 1 });
    });

    test("one row per rejection reason the API can reach", async () => {
      const cases: [string, (w: string) => Promise<Reply>, string][] = [
        ["insufficient_funds", (w) => withdraw(dev, w, "0.01"), "insufficient_funds"],
        ["credit_limit_below_usage", async (w) => {
          expectDecided(await setLimit(dev, w, "20"), "settled");
          expectDecided(await withdraw(dev, w, "15"), "settled");
          return setLimit(dev, w, "14.99");
        }, "credit_limit_below_usage"],
        ["operation_not_reversible: a withdrawal", async (w) => {
          await deposit(dev, w, "10");
          const out = await withdraw(dev, w, "3", { ...WAIT, "idempotency-key": "out-1" });
          expectDecided(out, "settled");
          return reverse(dev, w, "out-1");
        }, "operation_not_reversible"],
      ];
      for (const [, run, reason] of cases) expectDecided(await run(fresh("reason")), "rejected", reason);
      // An operation the wallet has not decided cannot be judged: 404, and nothing is sent.
      const unknown = await reverse(dev, fresh("reason"), "never-sent");
      expect(unknown.status).toBe(404);
      expect(unknown.json.error.code).toBe("operation_not_found");
      // A limit lowered to exactly the usage is allowed: available becomes 0.
      const w = fresh("exact");
      expectDecided(await setLimit(dev, w, "20"), "settled");
      expectDecided(await withdraw(dev, w, "15"), "settled");
      expectDecided(await setLimit(dev, w, "15"), "settled");
      expect((await call(dev, "GET", `/wallets/${w}`)).json).toMatchObject({ balance: -15, available: 0, credit_limit: 15 });
    });

    test("a flagged wallet's withdrawals are rejected_fraud; deposits into it are still settled; the flag's lag is measured", async () => {
      const w = fresh("fraud");
      const breach = await deposit(dev, w, "10000.01");
      expectDecided(breach, "settled");
      // The flag reaches the ledger through the log (threshold group, flags, then the
      // wallet's actor): withdrawals right after the breach may still settle.
      let lastSettledMs = Date.parse(breach.json.decided_at);
      let fraud: Reply | undefined;
      const deadline = Date.now() + CONVERGE_MS;
      while (!fraud && Date.now() < deadline) {
        const reply = await withdraw(dev, w, "0.01");
        expect(reply.status).toBe(200);
        if (reply.json.status === "settled") lastSettledMs = Date.parse(reply.json.decided_at);
        else fraud = reply;
      }
      expectDecided(fraud!, "rejected", "rejected_fraud");
      const lagMs = Date.parse(fraud!.json.decided_at) - Date.parse(breach.json.decided_at);
      console.log(`[fraud lag, ${backend.name}] the flag reached the ledger ${lastSettledMs - Date.parse(breach.json.decided_at)} to ${lagMs} ms after the breaching deposit was decided`);
      expectDecided(await deposit(dev, w, "5"), "settled");
      expect((await call(dev, "GET", `/wallets/${w}`)).json).toMatchObject({ above_threshold: true, flag: { reason: "threshold" } });
    });

    test("history pages newest first, with no entry missing or repeated while new entries arrive", async () => {
      const w = fresh("pages");
      for (let i = 1; i <= 12; i++) await deposit(dev, w, String(i), i === 12 ? WAIT : {});
      await eventually(async () => expect((await call(dev, "GET", `/wallets/${w}`)).json.entry_count).toBe(12), CONVERGE_MS);
      const seen: number[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const page: Reply = await call(dev, "GET", `/wallets/${w}/history?limit=5${cursor ? `&cursor=${cursor}` : ""}`);
        expect(page.status).toBe(200);
        seen.push(...page.json.entries.map((e: { entry_id: number }) => e.entry_id));
        for (const e of page.json.entries) expect(e.balance_after).toBe((e.entry_id * (e.entry_id + 1)) / 2);
        cursor = page.json.next_cursor;
        // A new entry between pages lands above the first page, never inside the walk.
        await deposit(dev, w, "100", WAIT);
        pages++;
      } while (cursor !== null);
      expect(pages).toBe(3);
      expect(seen).toEqual([12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1]);
      const newest = await call(dev, "GET", `/wallets/${w}/history?limit=1`);
      expect(newest.json.entries[0].entry_id).toBe(15);
    });

    test("ids starting with reversal: are reserved for reversals, as a key or as a reference", async () => {
      for (const [body, headers] of [
        [{ wallet_id: "w", amount: "1" }, { "idempotency-key": "reversal:d1" }],
        [{ wallet_id: "w", amount: "1", reference: "reversal:d1" }, {}],
      ] as const) {
        const reply = await call(dev, "POST", "/withdraw", body, headers);
        expect(reply.status).toBe(400);
        expect(reply.json.error.code).toBe("operation_id_reserved");
      }
    });

    test.each([
      ["/history?limit=0", "limit_out_of_range"],
      ["/history?limit=501", "limit_out_of_range"],
      ["/history?limit=ten", "limit_out_of_range"],
      ["/history?cursor=abc", "cursor_invalid"],
      ["/history?cursor=0", "cursor_invalid"],
      ["/balance", "at_is_required"],
      ["/balance?at=yesterday", "at_must_be_rfc3339"],
      ["/balance?at=2026-13-01T00:00:00Z", "at_must_be_rfc3339"],
      ["/balance?at=2026-02-30T10:00:00Z", "at_must_be_rfc3339"],
      ["/balance?at=2026-11-22T24:00:00Z", "at_must_be_rfc3339"],
      ["/operations/x?after=nope", "after_must_be_position"],
    ])("GET /wallets/w%s is a 400 %s", async (path, code) => {
      const reply = await call(dev, "GET", `/wallets/w${path}`);
      expect(reply.status).toBe(400);
      expect(reply.json.error.code).toBe(code);
    });

    test.each([
      ["POST", "/withdraw", { wallet_id: "w" }, "amount_is_required"],
      ["POST", "/withdraw", { wallet_id: "w", amount: "1.001" }, "amount_has_too_many_decimals"],
      ["POST", "/withdraw", '{"wallet_id":"w","amount":20.499999999999999}', "amount_has_too_many_decimals"],
      ["POST", "/withdraw", { amount: "1" }, "wallet_id_is_required"],
      ["POST", "/withdraw", { wallet_id: "w", amount: "1", description: "x".repeat(501) }, "description_too_long"],
      ["PUT", "/wallets/w/credit-limit", { credit_limit: "-1" }, "credit_limit_must_be_positive"],
      ["PUT", "/wallets/w/credit-limit", {}, "credit_limit_is_required"],
      ["PUT", "/wallets/w/credit-limit", { credit_limit: "0.001" }, "credit_limit_has_too_many_decimals"],
    ])("%s %s %j is a 400 %s, and binds no key", async (method, path, body, code) => {
      const key = fresh("unbound");
      const reply = await call(dev, method, path, body, { "idempotency-key": key });
      expect(reply.status).toBe(400);
      expect(reply.json.error.code).toBe(code);
      // The key stays free: a valid request with it is a new operation.
      const ok = await call(dev, "POST", "/deposit", { wallet_id: "w", amount: "1" }, { "idempotency-key": key });
      expect(ok.status).toBe(202);
    });
  });
}

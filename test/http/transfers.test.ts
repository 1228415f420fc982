// Transfers between wallets and users' wallets over HTTP, end to end on both logs: the
// real service (API, views, every processor group), the saga across partitions, the
// flag-wallet CLI, and an expiry with the processor stopped past the deadline.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { partitionForKey } from "../../src/log/murmur2.js";
import { backends, eventually, runCli, spawnApi, spawnProcessor, startDev, tempDataDir } from "../support.js";
import { fresh, request, type Reply } from "./client.js";

setDefaultTimeout(60_000);
const CONVERGE_MS = 20_000;
const PARTITIONS = 12;

/** A fresh wallet id on another partition than `other`'s: the saga crosses partitions. */
function elsewhere(name: string, other: string): string {
  for (;;) {
    const id = fresh(name);
    if (partitionForKey(id, PARTITIONS) !== partitionForKey(other, PARTITIONS)) return id;
  }
}

const call = request;

const WAIT = { prefer: "wait=5" };
const open = (base: string, body: Record<string, unknown>) => call(base, "POST", "/wallets", body);
const transfer = (base: string, from: string, to: string, amount: string, headers: Record<string, string> = WAIT) =>
  call(base, "POST", "/transfer", { from_wallet_id: from, to_wallet_id: to, amount }, headers);
const history = async (base: string, wallet: string) => (await call(base, "GET", `/wallets/${wallet}/history`)).json.entries;

function expectDecided(reply: Reply, status: "settled" | "rejected", reason?: string): void {
  expect({ http: reply.status, status: reply.json.status, reason: reply.json.reason }).toEqual({ http: 200, status, reason });
}

for (const backend of await backends("transfers over HTTP")) {
  describe(`transfers and users on the ${backend.name} log`, () => {
    let base: string;
    let stop: () => Promise<void>;
    let env = backend.env();
    beforeAll(async () => {
      const dev = await startDev(env);
      base = dev.base;
      stop = () => dev.stop();
      // The CLIs reach the same log: on the embedded one, through the same DATA_DIR.
      env = { ...env, DATA_DIR: dev.dataDir };
    });
    afterAll(async () => {
      await stop();
    });

    test("the session: two wallets for one user, a transfer settled, one rejected for funds, both histories and the user's activity", async () => {
      const user = fresh("user");
      const a = fresh("main");
      const b = elsewhere("savings", a);
      const first = await open(base, { wallet_id: a, user_id: user, initial_amount: "100" });
      expect(first.status).toBe(201);
      expect(first.headers.get("location")).toBe(`/wallets/${a}`);
      expect(first.json).toMatchObject({ wallet_id: a, user_id: user, balance: 100, available: 100, entry_count: 1, operation_id: "open" });
      expect((await open(base, { wallet_id: b, user_id: user })).json).toMatchObject({ wallet_id: b, balance: 0, user_id: user });

      const t = await transfer(base, a, b, "25.50", { ...WAIT, "idempotency-key": "rent" });
      expectDecided(t, "settled");
      expect(t.headers.get("preference-applied")).toBe("wait=5");
      expect(t.json).toMatchObject({ operation_id: "rent", kind: "transfer", wallet_id: a, to_wallet_id: b, amount: 25.5, entry_id: 2, balance_after: 74.5 });
      const status = await call(base, "GET", `/wallets/${a}/operations/rent`);
      expect(status.json).toMatchObject({ status: "settled", entry_id: 2 });

      const tooMuch = await transfer(base, a, b, "74.51");
      expectDecided(tooMuch, "rejected", "insufficient_funds");
      expect((await call(base, "GET", `/wallets/${a}`)).json).toMatchObject({ balance: 74.5, held: 0, available: 74.5, transfer_out_count: 1, pending_transfer_count: 0 });
      expect((await call(base, "GET", `/wallets/${b}`)).json).toMatchObject({ balance: 25.5, transfer_in_count: 1 });

      expect(await history(base, a)).toMatchObject([
        { entry_id: 2, operation_id: "rent", kind: "transfer_out", amount: -25.5, balance_after: 74.5, counterparty_wallet_id: b },
        { entry_id: 1, operation_id: "open", kind: "open", amount: 100, balance_after: 100 },
      ]);
      expect(await history(base, b)).toMatchObject([{ entry_id: 1, operation_id: "rent", kind: "transfer_in", amount: 25.5, balance_after: 25.5, counterparty_wallet_id: a }]);

      const wallets = (await call(base, "GET", `/users/${user}/wallets`)).json;
      expect(wallets.user_id).toBe(user);
      expect(wallets.wallets.map((w: { wallet_id: string; balance: number }) => [w.wallet_id, w.balance])).toEqual([[a, 74.5], [b, 25.5]]);

      // The activity, one entry a page: newest first across both wallets, each once.
      const seen: [string, number, string][] = [];
      let cursor: string | null = null;
      do {
        const page: Reply = await call(base, "GET", `/users/${user}/activity?limit=1${cursor ? `&cursor=${cursor}` : ""}`);
        expect(page.status).toBe(200);
        for (const e of page.json.entries) seen.push([e.wallet_id, e.entry_id, e.kind]);
        cursor = page.json.next_cursor;
      } while (cursor !== null && seen.length < 10);
      // The debit is recorded after the credit it waits for.
      expect(seen).toEqual([[a, 2, "transfer_out"], [b, 1, "transfer_in"], [a, 1, "open"]]);
    });

    test("a transfer to a wallet that was never opened and never received money is rejected by the destination", async () => {
      const a = fresh("src");
      expect((await open(base, { wallet_id: a, initial_amount: "10" })).status).toBe(201);
      const nobody = elsewhere("nobody", a);
      expectDecided(await transfer(base, a, nobody, "1"), "rejected", "destination_not_found");
      expectDecided(await transfer(base, a, a, "1"), "rejected", "same_wallet");
      // The hold was released: all of it is available again.
      expect((await call(base, "GET", `/wallets/${a}`)).json).toMatchObject({ balance: 10, held: 0, available: 10, rejected_count: 2 });
      // A wallet that received a deposit exists without being opened.
      const funded = elsewhere("funded", a);
      expect((await call(base, "POST", "/deposit", { wallet_id: funded, amount: "1" }, WAIT)).json.status).toBe("settled");
      expectDecided(await transfer(base, a, funded, "2"), "settled");
    });

    test("a flagged source's transfers are rejected_fraud", async () => {
      const a = fresh("flagged");
      const b = elsewhere("to", a);
      await open(base, { wallet_id: a, initial_amount: "50" });
      await open(base, { wallet_id: b });
      const flagged = await runCli("flag-wallet", ["--wallet", a], env);
      expect(flagged.code).toBe(0);
      // The flag reaches the ledger through the log: a transfer right after may still settle.
      const reply = await eventually(async () => {
        const r = await transfer(base, a, b, "0.01");
        expect(r.json.reason).toBe("rejected_fraud");
        return r;
      }, CONVERGE_MS, 50);
      expectDecided(reply, "rejected", "rejected_fraud");
      // Money into a flagged wallet still moves.
      await call(base, "POST", "/deposit", { wallet_id: b, amount: "2" }, WAIT);
      expectDecided(await transfer(base, b, a, "1"), "settled");
    });

    test("a retry with the same key is the same transfer, other content under it is 409, and a wallet opened again must match", async () => {
      const a = fresh("retry");
      const b = elsewhere("dest", a);
      await open(base, { wallet_id: a, initial_amount: "20" });
      await open(base, { wallet_id: b });
      const key = { "idempotency-key": fresh("key") };
      const first = await transfer(base, a, b, "5", key);
      expect(first.status).toBe(202);
      expect(first.json).toMatchObject({ status: "pending", kind: "transfer", to_wallet_id: b });
      const again = await transfer(base, a, b, "5", { ...key, ...WAIT });
      expectDecided(again, "settled");
      const third = await transfer(base, a, b, "5", { ...key, ...WAIT });
      expect(third.json).toEqual(again.json);
      expect((await transfer(base, a, b, "6", key)).json.error.code).toBe("idempotency_key_reused");
      expect((await call(base, "GET", `/wallets/${a}`)).json).toMatchObject({ balance: 15, transfer_out_count: 1 });
      expect((await call(base, "GET", `/wallets/${b}`)).json).toMatchObject({ balance: 5, transfer_in_count: 1 });

      // Opening again with the same content is the same operation; with other content, 409.
      expect((await open(base, { wallet_id: b })).status).toBe(201);
      const conflict = await open(base, { wallet_id: b, user_id: "someone" });
      expect({ status: conflict.status, code: conflict.json.error.code }).toEqual({ status: 409, code: "wallet_exists" });
      // The opening's id is reserved.
      expect((await transfer(base, a, b, "1", { "idempotency-key": "open" })).json.error.code).toBe("operation_id_reserved");
    });

    test("bad transfer and opening requests are refused with a code and change nothing", async () => {
      const a = fresh("bad");
      for (const [path, body, code] of [
        ["/transfer", { to_wallet_id: "x", amount: "1" }, "from_wallet_id_is_required"],
        ["/transfer", { from_wallet_id: a, amount: "1" }, "to_wallet_id_is_required"],
        ["/transfer", { from_wallet_id: a, to_wallet_id: "x", amount: "0" }, "amount_must_be_positive"],
        ["/transfer", { from_wallet_id: a, to_wallet_id: "x", amount: "1.001" }, "amount_has_too_many_decimals"],
        ["/wallets", { wallet_id: a, initial_amount: "-1" }, "initial_amount_must_be_positive"],
        ["/wallets", { wallet_id: a, user_id: "" }, "user_id_is_required"],
        ["/wallets", { wallet_id: a, user_id: "u\u0000" }, "user_id_has_control_characters"],
      ] as const) {
        const reply = await call(base, "POST", path, body);
        expect([path, reply.status, reply.json.error?.code]).toEqual([path, 400, code]);
      }
      expect((await call(base, "GET", `/wallets/${a}`)).json).toMatchObject({ balance: 0, entry_count: 0, opened_at: null });
    });

    test("a wallet id is generated when none is given", async () => {
      const reply = await open(base, { initial_amount: 3 });
      expect(reply.status).toBe(201);
      expect(reply.json.wallet_id).toMatch(/^[0-9a-f-]{36}$/);
      expect(reply.json.balance).toBe(3);
    });
  });

  test(`a transfer still pending past TRANSFER_TIMEOUT_SECONDS is rejected transfer_expired (${backend.name})`, async () => {
    // The API and the processor as separate processes: the processor is stopped while
    // the transfer waits, and comes back after its deadline.
    const env = { ...backend.env(), TRANSFER_TIMEOUT_SECONDS: "1" };
    const data = tempDataDir();
    const api = await spawnApi("api", data.dir, env);
    const processor = spawnProcessor(env, backend.name === "embedded" ? { dataDir: data.dir } : {});
    try {
      const a = fresh("late");
      const b = elsewhere("late-to", a);
      const opened = await eventually(async () => {
        const r = await open(api.base, { wallet_id: a, initial_amount: "10" });
        expect(r.status).toBe(201);
        return r;
      }, CONVERGE_MS, 200);
      expect(opened.json.balance).toBe(10);
      expect((await open(api.base, { wallet_id: b })).status).toBe(201);
      processor.proc.kill("SIGSTOP");
      const pending = await transfer(api.base, a, b, "4", {});
      expect(pending.status).toBe(202);
      await Bun.sleep(1_500);
      processor.proc.kill("SIGCONT");
      const decided = await eventually(async () => {
        const r = await call(api.base, "GET", `/wallets/${a}/operations/${pending.json.operation_id}`);
        expect(r.json.status).toBe("rejected");
        return r;
      }, CONVERGE_MS, 50);
      expect(decided.json.reason).toBe("transfer_expired");
      expect((await call(api.base, "GET", `/wallets/${a}`)).json).toMatchObject({ balance: 10, held: 0, available: 10, pending_transfer_count: 0 });
      expect((await call(api.base, "GET", `/wallets/${b}`)).json).toMatchObject({ balance: 0, entry_count: 0 });
      expect(await history(api.base, b)).toEqual([]);
    } finally {
      processor.proc.kill("SIGCONT");
      processor.proc.kill("SIGKILL");
      api.proc.kill("SIGKILL");
      await Promise.all([processor.proc.exited, api.proc.exited]);
      processor.cleanup();
      data.cleanup();
    }
  });
}

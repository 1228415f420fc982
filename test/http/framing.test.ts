// Requests the generated bad-input suite (fuzz.test.ts) found stored while the client was
// refused, or misrouted, each pinned by its exact bytes against the real service: a
// write is stored only when its request was whole and its connection can still carry
// the answer; the URL is never cut from a Host that is not a host.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { commands } from "../../src/topics/commands.js";
import { flags } from "../../src/topics/flags.js";
import { startDev } from "../support.js";
import { request } from "./client.js";
import { type RawExchange, sendRaw } from "./raw.js";

let dev: Awaited<ReturnType<typeof startDev>>;
let port: number;

beforeAll(async () => {
  dev = await startDev();
  port = Number(new URL(dev.base).port);
});
afterAll(() => dev?.stop());

/** Records in a topic, all partitions. */
const records = async (topic: string) => (await dev.log.endOffsets(topic)).reduce((a, b) => a + b, 0);

const send = (text: string, halfClose: "never" | "after-answer" = "never") => sendRaw(port, Buffer.from(text, "latin1"), { halfClose, timeoutMs: 3_000 });

const statusLines = (exchange: RawExchange) => exchange.responses.map((r) => r.statusLine);
const codeOf = (exchange: RawExchange, i = 0) => JSON.parse(exchange.responses[i]!.body.toString("utf8")).error.code as string;

/** Sends `text`, then checks that `topic` gained exactly `grown` records once a later, valid write to it is in. */
async function storedBy(topic: string, text: string, halfClose: "never" | "after-answer" = "never") {
  const before = await records(topic);
  const exchange = await send(text, halfClose);
  // Bun may refuse and close while the app is still at the request: a turn for it.
  await Bun.sleep(20);
  return { exchange, grown: (await records(topic)) - before };
}

describe("a write is stored only if its request was whole and can still be answered", () => {
  test.each([
    ["a chunk size that is not hex", "zz\r\n\r\n0\r\n\r\n"],
    ["a chunked trailer (Bun refuses trailers, after the handler has begun)", "0\r\nX-Trailer: 1\r\n\r\n"],
    ["a second last-chunk line", "0\r\n0\r\n\r\n"],
  ])("a body-less write (PUT /wallets/{id}/flag) with %s: Bun's 400, nothing stored", async (_name, payload) => {
    const { exchange, grown } = await storedBy(flags.name, `PUT /wallets/fr-1/flag HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${payload}`);
    expect(statusLines(exchange)).toEqual(["HTTP/1.1 400 Bad Request"]);
    expect(grown).toBe(0);
  });

  test("a body-less write with a body is refused as body_must_be_empty; {} is taken as none", async () => {
    const refused = await storedBy(flags.name, 'DELETE /wallets/fr-2/flag HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n{"a": 1}');
    expect(refused.exchange.responses[0]!.status).toBe(400);
    expect(codeOf(refused.exchange)).toBe("body_must_be_empty");
    expect(refused.grown).toBe(0);
    const taken = await storedBy(flags.name, "DELETE /wallets/fr-2/flag HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n{ }\n");
    expect(taken.exchange.responses[0]!.status).toBe(202);
    expect(taken.grown).toBe(1);
  });

  test("a body-less write whose body comes unframed (no Content-Length) is not stored: the bytes are Bun's next request, refused with 400", async () => {
    const { exchange, grown } = await storedBy(flags.name, 'DELETE /wallets/fr-3/flag HTTP/1.1\r\nHost: x\r\n\r\n{"wallet_id":"w1"}', "after-answer");
    expect(statusLines(exchange)).toEqual(["HTTP/1.1 400 Bad Request"]);
    expect(grown).toBe(0);
  });

  test("a deposit followed on its connection by bytes that are not HTTP: Bun answers 400 in its place, and it is not stored", async () => {
    const body = '{"wallet_id":"fr-4","amount":"1"}';
    const { exchange, grown } = await storedBy(commands.name, `POST /deposit HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n${body}\x01\r\n\r\n`, "after-answer");
    expect(statusLines(exchange)).toEqual(["HTTP/1.1 400 Bad Request"]);
    expect(grown).toBe(0);
  });

  test("the same deposit alone is stored and answered 202 (the check above can fail)", async () => {
    const body = '{"wallet_id":"fr-4","amount":"1"}';
    const { exchange, grown } = await storedBy(commands.name, `POST /deposit HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    expect(statusLines(exchange)).toEqual(["HTTP/1.1 202 Accepted"]);
    expect(grown).toBe(1);
  });
});

describe("Host", () => {
  test.each([
    ["HTTP/1.0 with no Host", "POST /deposit HTTP/1.0\r\n"],
    ["a Host with a space", "POST /xxxxxxx/deposit HTTP/1.1\r\nHost: a b\r\n"],
    ["a Host with a path", "POST /deposit HTTP/1.1\r\nHost: x/y\r\n"],
    ["an empty Host", "POST /deposit HTTP/1.1\r\nHost: \r\n"],
  ])("%s: 400 host_invalid in JSON, before any route, nothing stored", async (_name, head) => {
    const body = '{"wallet_id":"fr-5","amount":"1"}';
    const { exchange, grown } = await storedBy(commands.name, `${head}Content-Length: ${body.length}\r\n\r\n${body}`);
    expect(exchange.responses[0]!.status).toBe(400);
    expect(codeOf(exchange)).toBe("host_invalid");
    expect(grown).toBe(0);
  });
});

describe("ids in the path", () => {
  test("percent-encoding that is not UTF-8 is refused by name; %25 is a percent sign", async () => {
    const bad = await send("GET /wallets/%ff HTTP/1.1\r\nHost: x\r\n\r\n");
    expect(bad.responses[0]!.status).toBe(400);
    expect(codeOf(bad)).toBe("wallet_id_must_be_valid_unicode");
    const reversal = await send("POST /wallets/w/operations/a%c3/reverse HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    expect(codeOf(reversal)).toBe("operation_id_must_be_valid_unicode");
    const percent = await request(dev.base, "GET", "/wallets/%25ff");
    expect(percent.status).not.toBe(400);
  });
});

test("a description given as null is the wrong type, not a missing field", async () => {
  const reply = await request(dev.base, "POST", "/withdraw", { wallet_id: "fr-6", amount: "1", reference: "r-1", description: null });
  expect(reply.status).toBe(400);
  expect(reply.json.error.code).toBe("description_must_be_string");
  const wallet = await request(dev.base, "POST", "/withdraw", { wallet_id: null, amount: "1", reference: "r-1" });
  expect(wallet.json.error.code).toBe("wallet_id_is_required");
});

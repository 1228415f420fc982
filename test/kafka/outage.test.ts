// A broker outage is survived: `dev` on a real Kafka broker, under a stream of
// deposits, while the broker is killed with SIGKILL and restarted on its data, then
// frozen with SIGSTOP for 20 s and thawed. Through both, the API answers 503 with
// Retry-After in bounded time (at once while the broker is known to be away), /ready
// says 503 within seconds, GET /check keeps answering and says it is stale; afterwards
// the process carries on by itself, and every deposit counts exactly once.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { formatMinor } from "../../src/money.js";
import { kafkaOrSkip, uniquePrefix } from "../kafka-broker.js";
import { eventually, REPO_DIR, spawnDev, tempDataDir } from "../support.js";

const brokers = await kafkaOrSkip("broker outage on Kafka");
// The test kills and restarts the broker, so it must be the one scripts/kafka.sh runs.
const ownBroker = brokers !== undefined && Bun.spawnSync(["bash", join(REPO_DIR, "scripts/kafka.sh"), "status"]).exitCode === 0;
if (brokers && !ownBroker) console.warn("\n!!! SKIPPED broker outage: BROKERS is not a broker scripts/kafka.sh controls !!!\n");

async function broker(command: "kill" | "restart" | "pause" | "resume"): Promise<void> {
  const proc = Bun.spawn(["bash", join(REPO_DIR, "scripts/kafka.sh"), command], { stdout: "pipe", stderr: "pipe" });
  const [code, err] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
  if (code !== 0) throw new Error(`kafka.sh ${command} failed: ${err}`);
}

const WALLETS = 8;
/** The stream's pace: enough to be under load through the outage, little enough for CI. */
const DEPOSIT_INTERVAL_MS = 20;
/** Longest a POST may take to be answered while the broker is away. */
const ANSWER_BOUND_MS = 6_000;

interface Sent {
  wallet: string;
  cents: bigint;
}

/**
 * Deposits sent one after another, each under its own key; one answered 503 or not
 * answered is sent again with the same key until it is accepted, as a client must.
 */
class Stream {
  readonly sent = new Map<string, Sent>();
  readonly unacked = new Set<string>();
  readonly outcomes: { status: number; ms: number; retryAfter: string | null; atMs: number }[] = [];
  private stopping = false;
  private running: Promise<void> | undefined;
  private n = 0;

  constructor(private readonly base: string) {}

  start(): void {
    this.running = this.loop();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.running;
  }

  private async loop(): Promise<void> {
    while (!this.stopping) {
      // Retries first, so none is starved; then a new deposit.
      const key = this.unacked.values().next().value ?? this.fresh();
      await this.send(key);
      await Bun.sleep(DEPOSIT_INTERVAL_MS);
    }
  }

  private fresh(): string {
    const key = `outage-${++this.n}`;
    this.sent.set(key, { wallet: `outage-w${this.n % WALLETS}`, cents: BigInt(1 + (this.n % 97)) });
    this.unacked.add(key);
    return key;
  }

  /** Sends a key until accepted; used to finish the unacknowledged ones after the outage. */
  async send(key: string): Promise<void> {
    const { wallet, cents } = this.sent.get(key)!;
    const started = Date.now();
    try {
      const res = await fetch(`${this.base}/deposit`, {
        method: "POST",
        headers: { "idempotency-key": key },
        body: JSON.stringify({ wallet_id: wallet, amount: formatMinor(cents) }),
        signal: AbortSignal.timeout(30_000),
      });
      await res.text();
      this.outcomes.push({ status: res.status, ms: Date.now() - started, retryAfter: res.headers.get("retry-after"), atMs: started });
      if (res.status === 202 || res.status === 200) this.unacked.delete(key);
    } catch {
      this.outcomes.push({ status: 0, ms: Date.now() - started, retryAfter: null, atMs: started });
    }
  }

  expected(): Map<string, bigint> {
    const sums = new Map<string, bigint>();
    for (const { wallet, cents } of this.sent.values()) sums.set(wallet, (sums.get(wallet) ?? 0n) + cents);
    return sums;
  }
}

async function json(base: string, path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${base}${path}`, { signal: AbortSignal.timeout(10_000) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

if (brokers && ownBroker) {
  describe("dev on Kafka when the broker goes away", () => {
    const data = tempDataDir();
    let dev: { proc: Bun.Subprocess; base: string };
    let stream: Stream;

    beforeAll(async () => {
      dev = await spawnDev(data.dir, { BROKERS: brokers, TOPIC_PREFIX: uniquePrefix("outage"), PRODUCE_TIMEOUT_MS: "3000" });
      await eventually(async () => expect((await json(dev.base, "/ready")).status).toBe(200), 30_000, 200);
      stream = new Stream(dev.base);
      stream.start();
      await Bun.sleep(1_000);
    }, 60_000);

    afterAll(async () => {
      await stream?.stop();
      dev?.proc.kill("SIGTERM");
      await dev?.proc.exited;
      data.cleanup();
    }, 60_000);

    /** Watches an outage: how long until /ready said 503, and whether /check said stale. */
    async function duringOutage(outageMs: number): Promise<{ readyDownAfterMs: number | undefined; sawStale: boolean }> {
      const started = Date.now();
      let readyDownAfterMs: number | undefined;
      let sawStale = false;
      while (Date.now() - started < outageMs) {
        const ready = await json(dev.base, "/ready");
        if (ready.status === 503) readyDownAfterMs ??= Date.now() - started;
        const check = await json(dev.base, "/check/outage-w1");
        expect(check.status).toBe(200);
        if (check.body.stale === true) sawStale = true;
        await Bun.sleep(250);
      }
      return { readyDownAfterMs, sawStale };
    }

    async function recovered(): Promise<void> {
      await eventually(async () => expect((await json(dev.base, "/ready")).status).toBe(200), 60_000, 250);
      // Acknowledged again: the stream's next deposits get 202.
      const mark = stream.outcomes.length;
      await eventually(() => expect(stream.outcomes.slice(mark).some((o) => o.status === 202 || o.status === 200)).toBe(true), 30_000, 100);
      expect(dev.proc.exitCode).toBeNull();
    }

    test("kill -9 of the broker: 503 with Retry-After in bounded time, /ready 503, /check stale; then it carries on", async () => {
      const killedAt = Date.now();
      await broker("kill");
      const seen = await duringOutage(8_000);
      const during = stream.outcomes.filter((o) => o.atMs >= killedAt + 2_000);
      expect(during.length).toBeGreaterThan(0);
      for (const o of during) {
        expect(o.status).toBe(503);
        expect(o.retryAfter).toBe("1");
        expect(o.ms).toBeLessThan(ANSWER_BOUND_MS);
      }
      // Known to be away: answered at once, not after a timeout.
      expect(during.filter((o) => o.ms < 100).length).toBeGreaterThan(during.length / 2);
      expect(seen.readyDownAfterMs).toBeDefined();
      expect(seen.readyDownAfterMs!).toBeLessThan(5_000);
      expect(seen.sawStale).toBe(true);
      await broker("restart");
      await recovered();
    }, 120_000);

    test("SIGSTOP of the broker for 20 s, then SIGCONT: the same, and nothing lost or doubled", async () => {
      const frozenAt = Date.now();
      await broker("pause");
      let seen;
      try {
        seen = await duringOutage(20_000);
      } finally {
        await broker("resume");
      }
      const during = stream.outcomes.filter((o) => o.atMs >= frozenAt + 1_000 && o.atMs < frozenAt + 19_000);
      expect(during.length).toBeGreaterThan(0);
      for (const o of during) {
        expect([503, 202]).toContain(o.status);
        expect(o.ms).toBeLessThan(ANSWER_BOUND_MS);
      }
      expect(seen.readyDownAfterMs).toBeDefined();
      expect(seen.readyDownAfterMs!).toBeLessThan(5_000);
      expect(seen.sawStale).toBe(true);
      await recovered();

      // Every deposit the stream made is acknowledged (retried with its key until it
      // was), and counts exactly once: the balances are the sums of the keys.
      await stream.stop();
      for (const key of [...stream.unacked]) {
        while (stream.unacked.has(key)) await stream.send(key);
      }
      expect(stream.sent.size).toBeGreaterThan(100);
      const expected = stream.expected();
      await eventually(async () => {
        for (const [wallet, cents] of expected) {
          const check = await json(dev.base, `/check/${wallet}`);
          expect(String(check.body.balance)).toBe(formatMinor(cents));
        }
      }, 60_000, 500);
      expect(dev.proc.exitCode).toBeNull();
    }, 180_000);
  });
}

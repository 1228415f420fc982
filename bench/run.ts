// `bun run bench`: measures the embedded log's group commit, the deposit path end to
// end, and the detector, and prints ratios measured in this one run (machines are
// noisy; compare numbers from the same run only). Sizes scale with BENCH_SCALE.
import { thresholdActor } from "../actors/threshold.js";
import type { DepositEvent } from "../actors/types.js";
import { EmbeddedLog } from "../src/log/embedded.js";
import { spawnDev, tempDataDir } from "../test/support.js";

const SCALE = Number(process.env.BENCH_SCALE ?? "1");
const fmt = (n: number) => n.toLocaleString("en-US", { maximumFractionDigits: 0 });
const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MiB`;

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const start = performance.now();
  const result = await fn();
  return [result, performance.now() - start];
}

async function groupCommit(): Promise<void> {
  const n = 2_000 * SCALE;
  const data = tempDataDir();
  const log = EmbeddedLog.open(data.dir, { pollMs: 50 });
  await log.ensureTopics([{ name: "t", partitions: 12 }]);
  const value = new Uint8Array(64);
  const [, oneByOne] = await timed(async () => {
    for (let i = 0; i < n; i++) await log.produce([{ topic: "t", key: `w${i % 1000}`, value }]);
  });
  const [, concurrent] = await timed(() => Promise.all(Array.from({ length: n }, (_, i) => log.produce([{ topic: "t", key: `w${i % 1000}`, value }]))));
  await log.close();
  data.cleanup();
  console.log(`log: ${fmt(n)} durable appends, awaited one by one: ${fmt((n / oneByOne) * 1000)}/s; concurrent (group commit): ${fmt((n / concurrent) * 1000)}/s; ratio ${(oneByOne / concurrent).toFixed(1)}x`);
}

async function endToEnd(): Promise<void> {
  const n = 5_000 * SCALE;
  const concurrency = 64;
  const wallets = 1_000;
  const data = tempDataDir();
  // The service runs in its own process, as `bun run dev` does, so the load generator
  // does not share its event loop.
  const { proc, base } = await spawnDev(data.dir, { EMBEDDED_POLL_MS: "50", BROKERS: "" });
  let next = 0;
  const latencies: number[] = [];
  const [, ackMs] = await timed(() => Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) {
      const i = next++;
      const start = performance.now();
      const res = await fetch(`${base}/deposit`, { method: "POST", body: `{"wallet_id":"w${i % wallets}","amount":"1.01"}` });
      if (res.status !== 202) throw new Error(`deposit ${i}: ${res.status} ${await res.text()}`);
      latencies.push(performance.now() - start);
    }
  })));
  const [, drainMs] = await timed(async () => {
    for (;;) {
      const body = await (await fetch(`${base}/check/w${wallets - 1}`)).json() as { deposit_count: number };
      if (body.deposit_count === n / wallets) return;
      await Bun.sleep(10);
    }
  });
  const rss = Number((await Bun.file(`/proc/${proc.pid}/status`).text()).match(/VmRSS:\s+(\d+)/)?.[1] ?? 0) * 1024;
  latencies.sort((a, b) => a - b);
  const p = (q: number) => latencies[Math.floor(q * (latencies.length - 1))]!.toFixed(1);
  console.log(`deposits: ${fmt(n)} over HTTP to a dev process at concurrency ${concurrency}: ${fmt((n / ackMs) * 1000)} acks/s, latency p50 ${p(0.5)} ms p99 ${p(0.99)} ms`);
  console.log(`deposits: the last wallet showed all its deposits in /check ${fmt(drainMs)} ms after the last ack; dev RSS ${mib(rss)}`);
  proc.kill("SIGTERM");
  await proc.exited;
  data.cleanup();
}

function detector(): void {
  const n = 2_000 * SCALE;
  const rule = { amountMinor: 10n ** 15n, windowMs: 120_000, latenessMs: 86_400_000, entriesMax: 1_000, depositAmountMaxMinor: 10n ** 12n };
  const actor = thresholdActor(rule);
  const deposits: DepositEvent[] = Array.from({ length: n }, (_, i) => ({ depositId: `d${i}`, walletId: "w", amountMinor: 100n, eventTimeMs: i * 50 }));
  let state = actor.initial();
  const start = performance.now();
  for (const d of deposits) state = actor.handle(state, d).state;
  const incremental = performance.now() - start;
  // The oracle: every window start against every deposit, per deposit.
  const startOracle = performance.now();
  for (let i = 0; i < n; i++) {
    const t = deposits[i]!.eventTimeMs;
    for (let j = 0; j <= i; j++) {
      const s = deposits[j]!.eventTimeMs;
      if (s > t || t >= s + rule.windowMs) continue;
      let sum = 0n;
      for (let k = 0; k <= i; k++) if (deposits[k]!.eventTimeMs >= s && deposits[k]!.eventTimeMs < s + rule.windowMs) sum += deposits[k]!.amountMinor;
    }
  }
  const oracle = performance.now() - startOracle;
  console.log(`detector: ${fmt(n)} deposits of one wallet, 2,400 per window: ${(incremental * 1000 / n).toFixed(1)} us/deposit incremental vs ${(oracle * 1000 / n).toFixed(0)} us brute force; ratio ${(oracle / incremental).toFixed(0)}x; entries kept ${state.entries.length}`);
}

console.log(`bench (BENCH_SCALE=${SCALE}) on ${navigator.hardwareConcurrency} cores, Bun ${Bun.version}`);
await groupCommit();
detector();
await endToEnd();

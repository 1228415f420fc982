// In-process cost of one GET /check through the app, views stubbed, for A/B runs:
//   taskset -c 0 bun bench/ab/check.ts <checkout>
import { resolve } from "node:path";
const repo = resolve(process.argv[2] ?? ".");
const { createApp } = await import(`${repo}/src/http/app.ts`);
const { EmbeddedLog } = await import(`${repo}/src/log/embedded.ts`);
const { LogGuard } = await import(`${repo}/src/log/guard.ts`);
const { Emitter } = await import(`${repo}/src/runtime/emitter.ts`);
const views = { get: () => ({ balanceMinor: 123n, depositCount: 1, rejectedCount: 0 }), applied: () => undefined, entries: () => [], entryAt: () => undefined, status: () => ({ caughtUp: true, asOfMs: Date.now() }), waitFor: async () => true, start() {}, done: Promise.resolve(), async stop() {} };
const flags = { ...views, get: () => undefined };
const log = new EmbeddedLog(":memory:", { pollMs: 10 });
const guard = new LogGuard(log);
const topic = { name: "x", key: () => "k", codec: { encode: () => new Uint8Array() } };
const app = createApp({ deposits: new Emitter(guard, topic), commands: new Emitter(guard, topic), health: guard, balances: views, flags, depositAmountMaxMinor: 100000n });
const N = 200_000;
for (let i = 0; i < 20000; i++) await app.request(`/check/w${i % 100}`);
const t = performance.now();
for (let i = 0; i < N; i++) await app.request(`/check/w${i % 100}`);
console.log(repo, ((performance.now() - t) * 1000 / N).toFixed(2), "µs per GET /check");

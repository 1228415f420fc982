// In-process cost of one POST /deposit through the app (Hono, validation, encode, the
// embedded log's group commit), without the network, for A/B runs of two checkouts:
//   taskset -c 0 bun bench/ab/post.ts <checkout>
import { resolve } from "node:path";
const repo = resolve(process.argv[2] ?? ".");
const { createApp } = await import(`${repo}/src/http/app.ts`);
const { EmbeddedLog } = await import(`${repo}/src/log/embedded.ts`);
const { LogGuard } = await import(`${repo}/src/log/guard.ts`);
const { Emitter } = await import(`${repo}/src/runtime/emitter.ts`);
const { GROUPS } = await import(`${repo}/src/groups/index.ts`);
const { topicSpecs } = await import(`${repo}/src/runtime/group.ts`);
let topics: any = {};
try { topics.deposits = (await import(`${repo}/src/topics/deposits.ts`)).deposits; } catch {}
try { topics.commands = (await import(`${repo}/src/topics/commands.ts`)).commands; } catch {}
const views = { get: () => undefined, applied: () => undefined, entries: () => [], entryAt: () => undefined, status: () => ({ caughtUp: true, asOfMs: Date.now() }), waitFor: async () => true, start() {}, done: Promise.resolve(), async stop() {} };
const dir = `${(await import("node:os")).tmpdir()}/depositaja-ab-${process.pid}`;
const log = new EmbeddedLog(`${dir}.db`, { pollMs: 10, nonBlockingAppends: true });
await log.ensureTopics(topicSpecs(GROUPS, 12));
const guard = new LogGuard(log);
const app = createApp({ deposits: topics.deposits && new Emitter(guard, topics.deposits), commands: topics.commands && new Emitter(guard, topics.commands), health: guard, balances: views, flags: views, depositAmountMaxMinor: 100000000n });
const N = 40_000;
const run = async (n: number, off: number) => {
  const inflight: Promise<Response>[] = [];
  for (let i = 0; i < n; i++) {
    inflight.push(app.request("/deposit", { method: "POST", body: `{"wallet_id":"w${i % 1000}","amount":"12.34"}` }));
    if (inflight.length >= 64) { await Promise.all(inflight); inflight.length = 0; }
  }
  await Promise.all(inflight);
};
await run(5000, 0);
const t = performance.now();
await run(N, 1);
console.log(repo, ((performance.now() - t) * 1000 / N).toFixed(2), "µs per POST /deposit");
await log.close();

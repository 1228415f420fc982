// In-process cost of one POST /deposit refused with 503 overloaded (WRITES_IN_FLIGHT_MAX
// reached) through the app, without the network; GET /check the same way for scale
// (bench/ab/check.ts). For the overload analysis (bench/analysis-overload.md):
//   taskset -c 0 bun bench/ab/shed.ts <checkout>
import { resolve } from "node:path";
import { stubbedApp } from "./stub-app.js";
const repo = resolve(process.argv[2] ?? ".");
// No write may be in flight: every write is refused before its body is read.
const app = await stubbedApp(repo, { writesInFlightMax: 0 });
const deposit = (i: number) => app.request("/deposit", { method: "POST", headers: { "idempotency-key": `k-${i}` }, body: `{"wallet_id":"w${i % 1000}","amount":"1.23"}` });
const first = await deposit(0);
const body = (await first.json()) as { error?: { code?: string } };
if (first.status !== 503 || body.error?.code !== "overloaded" || !first.headers.get("retry-after")) throw new Error(`expected 503 overloaded with Retry-After, got ${first.status} ${JSON.stringify(body)}`);
const N = 200_000;
const time = async (what: string, request: (i: number) => Promise<Response>) => {
  for (let i = 0; i < 20_000; i++) await (await request(i)).arrayBuffer();
  const t = performance.now();
  for (let i = 0; i < N; i++) await (await request(i)).arrayBuffer();
  console.log(repo, ((performance.now() - t) * 1000 / N).toFixed(2), `µs per ${what}`);
};
await time("POST /deposit refused 503 overloaded", deposit);
await time("GET /check", (i) => app.request(`/check/w${i % 100}`));

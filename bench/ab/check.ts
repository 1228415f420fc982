// In-process cost of one GET /check through the app, views stubbed, for A/B runs:
//   taskset -c 0 bun bench/ab/check.ts <checkout>
import { resolve } from "node:path";
import { stubbedApp } from "./stub-app.js";
const repo = resolve(process.argv[2] ?? ".");
const app = await stubbedApp(repo);
const N = 200_000;
for (let i = 0; i < 20000; i++) await app.request(`/check/w${i % 100}`);
const t = performance.now();
for (let i = 0; i < N; i++) await app.request(`/check/w${i % 100}`);
console.log(repo, ((performance.now() - t) * 1000 / N).toFixed(2), "µs per GET /check");
